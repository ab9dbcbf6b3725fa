"""tools/repair_subset: the composition of a kept subset, on hand-made masks."""

import math

import pytest
import torch

from debiasbench.tools.repair_subset import main, subset_composition


def test_shares_of_a_subset_that_keeps_every_conflicting_sample_and_half_the_rest() -> None:
    conflicting = torch.tensor([True, True, False, False, False, False, False, False, False, False])
    kept = torch.tensor([True, True, True, True, True, True, False, False, False, False])
    shares = subset_composition(kept, conflicting)
    assert shares == pytest.approx(
        {
            "kept_of_training_set": 60.0,
            "conflicting_kept": 100.0,
            "conflicting_share_of_subset": 100 * 2 / 6,
        }
    )


def test_empty_subsets_and_sets_without_conflicting_samples_give_nan() -> None:
    assert math.isnan(
        subset_composition(torch.zeros(4, dtype=torch.bool), torch.ones(4, dtype=torch.bool))[
            "conflicting_share_of_subset"
        ]
    )
    assert math.isnan(
        subset_composition(torch.ones(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool))["conflicting_kept"]
    )


def test_a_malformed_method_param_is_a_usage_error_naming_the_form(capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--ratio", "99.5", "--method-param", "weight_epochs"])
    assert raised.value.code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
