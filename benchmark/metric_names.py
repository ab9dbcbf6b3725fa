"""The names of the per-epoch metrics that cross a layer boundary, defined once. Torch-free.

A trial reports these flat names to Ray Tune every epoch (a search or a scheduler optimises
them); each one is a row of the result store, addressed by (split, subset, stored metric).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoredMetric:
    split: str  # "train", "test" or "valid"
    subset: str  # "all", "aligned", "conflicting", ...
    metric: str  # the stored metric column's value


TEST_ACCURACY = "test_accuracy"  # unbiased test accuracy of the predictor: reported, never optimised
VALID_ACCURACY = "valid_accuracy"  # plain accuracy on the held-out split (no bias labels)
VALID_WORST_GROUP_ACCURACY = "valid_worst_group_accuracy"  # reads validation bias labels

REPORTED = {
    TEST_ACCURACY: StoredMetric("test", "all", "accuracy"),
    VALID_ACCURACY: StoredMetric("valid", "all", "sample_accuracy"),
    VALID_WORST_GROUP_ACCURACY: StoredMetric("valid", "all", "worst_group_accuracy"),
}
# What a search or an early-stopping scheduler may optimise: validation metrics only.
SEARCHABLE = (VALID_ACCURACY, VALID_WORST_GROUP_ACCURACY)
