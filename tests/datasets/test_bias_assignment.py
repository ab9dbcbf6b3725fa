"""Bias assignment: both rules give the reference generator's exact counts per (target, bias) cell;
`reference` reproduces its positional layout sample for sample, `random` is seeded."""

import numpy as np
import pytest

from debiasbench.datasets._bias import ASSIGNMENTS, assign_bias, bias_counts

MNIST_TRAIN_CLASS_SIZES = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_CLASS_SIZES = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def reference_attr_labels(targets: np.ndarray, aligned_fraction: float) -> np.ndarray:
    """The reference generator's rule, written out loop by loop as its make_attr_labels does it:
    per class, a row of probabilities (aligned fraction on the diagonal), milestones
    round(n_y * cumsum), and each sample in dataset order gets the smallest value whose milestone
    exceeds its position within the class."""
    num_classes = int(targets.max()) + 1
    sizes = np.array([(targets == y).sum() for y in range(num_classes)])
    eye = np.eye(num_classes)
    rows = aligned_fraction * eye + (1 - aligned_fraction) / (num_classes - 1) * (1 - eye)
    milestones = (sizes[:, None] * np.cumsum(rows, axis=1)).round()
    labels = np.zeros_like(targets)
    for y in range(num_classes):
        for position, index in enumerate(np.flatnonzero(targets == y)):
            labels[index] = np.min(np.nonzero(milestones[y] > position)[0])
    return labels


def shuffled_targets(sizes: list[int], seed: int) -> np.ndarray:
    targets = np.repeat(np.arange(len(sizes)), sizes)
    return targets[np.random.default_rng(seed).permutation(len(targets))]


@pytest.mark.parametrize("aligned_fraction", [0.95, 0.98, 0.99, 0.995])
def test_reference_rule_equals_the_reference_generator_sample_for_sample(aligned_fraction):
    targets = shuffled_targets(MNIST_TRAIN_CLASS_SIZES, seed=3)
    ours = assign_bias(targets, aligned_fraction, 10, "reference")
    np.testing.assert_array_equal(ours, reference_attr_labels(targets, aligned_fraction))


def test_reference_rule_on_the_unbiased_test_split():
    targets = shuffled_targets(MNIST_TEST_CLASS_SIZES, seed=4)
    np.testing.assert_array_equal(assign_bias(targets, 0.1, 10), reference_attr_labels(targets, 0.1))


def test_reference_rule_lays_out_consecutive_blocks_in_bias_value_order():
    targets = np.array([2] * 40 + [0] * 40)
    biases = assign_bias(targets, 0.55, 4)
    # Class 2: p = (0.15, 0.15, 0.55, 0.15) -> milestones 6, 12, 34, 40 -> blocks of 6/6/22/6.
    np.testing.assert_array_equal(biases[:40], [0] * 6 + [1] * 6 + [2] * 22 + [3] * 6)
    # Class 0: the aligned block comes first.
    np.testing.assert_array_equal(biases[40:], [0] * 22 + [1] * 6 + [2] * 6 + [3] * 6)


@pytest.mark.parametrize("aligned_fraction", [0.95, 0.995, 0.1])
def test_random_rule_has_the_reference_counts_in_every_cell(aligned_fraction):
    targets = shuffled_targets(MNIST_TRAIN_CLASS_SIZES, seed=5)
    reference = reference_attr_labels(targets, aligned_fraction)
    shuffled = assign_bias(targets, aligned_fraction, 10, "random", np.random.default_rng(0))
    cells = lambda biases: np.bincount(targets * 10 + biases, minlength=100)  # noqa: E731
    np.testing.assert_array_equal(cells(shuffled), cells(reference))
    assert (shuffled != reference).any()


def test_random_rule_is_seeded():
    targets = shuffled_targets(MNIST_TEST_CLASS_SIZES, seed=6)
    a = assign_bias(targets, 0.1, 10, "random", np.random.default_rng(0))
    b = assign_bias(targets, 0.1, 10, "random", np.random.default_rng(0))
    c = assign_bias(targets, 0.1, 10, "random", np.random.default_rng(1))
    assert (a == b).all() and (a != c).any()


@pytest.mark.parametrize("n,fraction,target", [(5923, 0.995, 0), (5421, 0.995, 5), (980, 0.1, 9), (7, 0.98, 3)])
def test_bias_counts_are_the_block_sizes_of_the_reference_rule(n, fraction, target):
    # One class `target` of n samples, plus one sample of every other class so all ten exist.
    targets = np.concatenate([np.full(n, target), np.delete(np.arange(10), target)])
    labels = reference_attr_labels(targets, fraction)[:n]
    counts = bias_counts(n, fraction, 10, target)
    np.testing.assert_array_equal(counts, np.bincount(labels, minlength=10))
    assert counts.sum() == n


def test_unknown_assignment_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="reference, random"):
        assign_bias(np.arange(3), 0.9, 3, "shuffled")
    assert ASSIGNMENTS == ("reference", "random")
