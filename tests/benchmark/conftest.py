"""Fixtures shared by several test files in tests/benchmark."""

from pathlib import Path

import pandas as pd
import pytest
from html_page_kit import COLUMNS, HOSTILE, _known_cells, _png, _table1_cells


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True)
    pd.DataFrame(_known_cells(), columns=COLUMNS).to_csv(out / "table2.csv", index=False)
    pd.DataFrame(_table1_cells(), columns=COLUMNS).to_csv(out / "table1.csv", index=False)
    (out / "table2.md").write_text(
        "### Table 2\n\nTable 2: Unbiased test accuracy & more.\n\n| a |\n", encoding="utf-8"
    )
    for number in (2, 4):
        (out / "figures" / f"figure{number}.png").write_bytes(_png(number, number))
    pd.DataFrame({"target": [0, 1], "0": [90.0, 60.0], "1": [51.0, 90.0]}).to_csv(
        out / "groups_trial_abc_matrix.csv", index=False
    )
    (out / "groups_trial_abc.png").write_bytes(_png(3, 3))
    pd.DataFrame(
        [
            {
                "trial_key": "abc",
                "dataset": "cmnist",
                "method": HOSTILE,
                "dataset_params": "{}",
                "method_hparams": "{}",
                "trial_seed": 0,
                "selection_protocol": "paper",
                "epoch": e,
                "metric": "q_max",
                "value": v,
            }
            for e, v in ((1, 0.1), (2, 0.375))
        ]
    ).to_csv(out / "diagnostics.csv", index=False)
    pd.DataFrame(
        [
            {
                "trial_key": "f00",
                "dataset": "cmnist",
                "method": "group_dro",
                "dataset_params": "{}",
                "method_hparams": "{}",
                "trial_seed": 0,
                "selection_protocol": "paper",
                "error": "Traceback\nRuntimeError: <b>CUDA</b> out of memory",
            }
        ]
    ).to_csv(out / "failed_trials.csv", index=False)
    return out
