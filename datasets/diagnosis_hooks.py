"""Diagnosis hooks (docs/diagnose.md) of dataset families whose class does not define
`diagnosis_settings` itself, registered by name with `datasets.base.register_diagnosis`.

image_table: its package is being reorganised, so its hook lives here for now and uses only the
package's public names; it can move into the class unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datasets.base import DataPaths, DiagnosisSettings, register_diagnosis


@register_diagnosis("image_table")
def image_table_diagnosis(cls: type, params: Mapping[str, Any], paths: DataPaths) -> DiagnosisSettings:
    """Reverse: swap the `target` and `bias` columns. Balanced: `ratio` = 100 / (number of bias
    values), i.e. each class keeps as many aligned samples as a uniform bias would give it (with a
    binary bias: exactly as many aligned as conflicting samples per class; with more values the
    conflicting samples keep their groups' proportions). Reads the table (no images) to count the
    bias values and name the classes."""
    from datasets.image_table import encode_attribute, read_table

    values = dict(params)
    canonical = cls.make_params(values)
    if canonical.bias is None:
        raise ValueError(
            "image_table needs bias=COLUMN to be diagnosed: the diagnosis compares training on the "
            "data as it is with a bias-balanced subsample, so it must know the bias column"
        )
    _, table_path = cls.locate(canonical, paths)
    table = read_table(table_path)
    _, target_values = encode_attribute(table, canonical.target, "target")
    _, bias_values = encode_attribute(table, canonical.bias, "bias")
    if len(bias_values) < 2:
        raise ValueError(f"the bias column {canonical.bias!r} has a single value, so no sample conflicts with it")
    biased = {**values, "target": canonical.target, "bias": canonical.bias}
    return DiagnosisSettings(
        biased=biased,
        balanced={**biased, "ratio": 100.0 / len(bias_values)},
        reversed={**biased, "target": canonical.bias, "bias": canonical.target},
        target=canonical.target,
        bias=canonical.bias,
        target_values=tuple(str(v) for v in target_values),
        bias_values=tuple(str(v) for v in bias_values),
        balanced_how=(
            f"the training split subsampled per class to ratio={100.0 / len(bias_values):g}% aligned "
            f"samples (1 in {len(bias_values)} bias values: a uniform bias given the target"
            + (")" if len(bias_values) == 2 else "; conflicting groups keep their proportions)")
        ),
    )
