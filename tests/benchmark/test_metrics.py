import math

import torch

from debiasbench.benchmark.training.metrics import GroupCounts, summarize


def test_group_accuracies_weigh_every_cell_equally():
    counts = GroupCounts.zeros(2, 2)
    # cell (0,0): 3/4 correct; (0,1): 0/1; (1,1): 2/2; (1,0): empty
    targets = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    biases = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    predictions = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    counts.add(predictions, targets, biases)
    accuracy = counts.accuracy_matrix()
    assert accuracy[0, 0] == 0.75 and accuracy[0, 1] == 0.0 and accuracy[1, 1] == 1.0
    assert math.isnan(accuracy[1, 0])
    summary = summarize(counts, aligned_bias=torch.tensor([0, 1]))
    assert summary["all"]["accuracy"] == (0.75 + 0.0 + 1.0) / 3  # unbiased: mean over cells
    assert summary["all"]["sample_accuracy"] == 5 / 7
    assert summary["all"]["worst_group_accuracy"] == 0.0
    assert summary["aligned"]["accuracy"] == (0.75 + 1.0) / 2
    assert summary["conflicting"]["accuracy"] == 0.0


def test_without_bias_cells_are_classes():
    counts = GroupCounts.zeros(3, 1)
    counts.add(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), torch.zeros(4, dtype=torch.long))
    summary = summarize(counts, aligned_bias=None)
    assert set(summary) == {"all"}
    assert summary["all"]["accuracy"] == (1 + 1 + 0.5) / 3
