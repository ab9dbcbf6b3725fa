"""constraints-reference.txt pins the versions the shipped reference results were produced with:
the torch version every shipped trial records, and a version for every runtime dependency."""

import re
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints-reference.txt"


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_the_constraints_pin_the_torch_version_every_shipped_trial_records():
    recorded = set()
    for trial_file in sorted((ROOT / "results" / "reference").glob("*/trials/*.parquet")):
        recorded |= set(pd.read_parquet(trial_file, columns=["torch_version"])["torch_version"])
    assert recorded, "no shipped trial found"
    # "2.14.1+cu130" is the build of release 2.14.1.
    assert {v.split("+")[0] for v in recorded} == {_pins()["torch"]}


def test_every_runtime_dependency_is_pinned_to_one_exact_version():
    text = (ROOT / "pyproject.toml").read_text()
    block = text[text.index("dependencies = [") : text.index("]", text.index("dependencies = ["))]
    names = {re.match(r"[A-Za-z0-9_.-]+", entry).group(0).lower() for entry in re.findall(r'"([^"]+)"', block)}
    assert names <= set(_pins()), f"not pinned: {sorted(names - set(_pins()))}"
