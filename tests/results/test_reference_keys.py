"""Every shipped result set (results/reference/*) holds exactly the trials that the commands which
produced it resolve to today. A trial key hashes the resolved configuration, so this fails when a
protocol change, a new hyper-parameter or a new generator version leaves a shipped set describing
other trials than its commands would run (a rerun would then train them again instead of skipping
them). The commands are run as `--dry-run`s of the real command line into an empty store.

When it fails: rerun the trials, or re-key them with `python -m debiasbench.tools.rekey_trials` if and only if
the stored runs behaved exactly as the new default does, and say so in results/README.md."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from debiasbench import cli
from debiasbench.benchmark.store import ResultStore

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"
EXTENDED_ONLY = "jtt,learned_mixin,hard_example,spectral_decoupling,group_reweight,group_resample,dann,and_mask"
# Each shipped set and the commands (run_all.py arguments) that produced it (results/README.md).
SHIPPED: dict[str, list[str]] = {
    "cmnist": ["--grid paper --datasets cmnist"],
    "cmnist_extended": [
        f"--grid extended --datasets cmnist --ratios 95,99.5 --methods {EXTENDED_ONLY}",
        # The background notes' strategies (session 10).
        "--grid extended --datasets cmnist --ratios 95,99.5 --methods balanced_batches,smote,occamnets,adversarial",
        # The LfF family (sessions 10-11).
        "--grid extended --datasets cmnist --ratios 95,99.5 --methods disent,lff_be",
        "--grid extended --datasets cmnist --ratios 95,99.5 --methods pgd,lc,selecmix",
        "--grid extended --datasets cmnist --ratios 95,99.5 --methods selecmix_lff",
    ],
    # --seeds auto on the 99.5% cell's leading pair (issue 26): the seeds it added to the 3 shipped.
    "cmnist_seeds": [
        "--grid extended --datasets cmnist --ratios 99.5 --methods group_reweight,disent --seeds 3,4,5,6,7,8,9"
    ],
    # The extended comparison under the validation protocol (issue 26), methods measured so far.
    "cmnist_validation": [
        "--grid extended --datasets cmnist --ratios 95,99.5 --methods vanilla,lff,group_dro,group_reweight,disent,lc,pgd,lff_be,selecmix,hard_example,spectral_decoupling,dann,and_mask,smote,adversarial,learned_mixin,occamnets,hex,selecmix_lff,balanced_batches,jtt,repair,group_resample "
        "--protocol validation"
    ],
    # --seeds auto under the validation protocol on SelecMix - PGD at 99.5% (the hold-out's epoch): the seeds it added.
    "cmnist_validation_seeds": [
        "--grid extended --datasets cmnist --ratios 99.5 --methods selecmix,pgd --protocol validation "
        "--seeds 3,4,5,6,7,8,9"
    ],
    "cmnist_random": [
        "--grid paper --tables 2 --datasets cmnist --methods vanilla,lff --ratios 95,99.5 "
        "--dataset-param assignment=random"
    ],
    # The named single-seed experiments of docs/results.md and docs/methods-beyond-the-paper.md.
    "cmnist_probes": [
        "--grid paper --tables 2 --datasets cmnist --methods lff --ratios 99.5 --seeds 3,4,5",
        "--grid paper --tables 2 --datasets cmnist --methods repair --ratios 95,98,99,99.5 --seeds 0 "
        "--method-param weight_epochs=1000 --method-param variant=T",
        "--grid paper --tables 2 --datasets cmnist --methods repair --ratios 95,99.5 --seeds 0 "
        "--method-param weight_epochs=1000 --method-param variant=S",
        "--grid paper --tables 2 --datasets cmnist --methods hex --ratios 95,99 --seeds 0 "
        "--method-param nglcm_input=per_channel",
        "--grid paper --tables 2 --datasets cmnist --methods hex --ratios 95 --seeds 0 --method-param feature_norm=batch",
        "--grid paper --tables 2 --datasets cmnist --methods hex --ratios 95 --seeds 0 "
        "--method-param feature_norm=none --method-param dropout=0",
        "--grid extended --datasets cmnist --methods and_mask --ratios 95,99.5 --seeds 0 "
        "--method-param environments=bias",
        "--grid extended --datasets cmnist --methods dann --ratios 95 --seeds 0 --method-param grl_lambda=0.1",
        "--grid extended --datasets cmnist --methods learned_mixin --ratios 95 --seeds 0 "
        "--method-param bias_smoothing=0.05",
        "--grid extended --datasets cmnist --methods smote --ratios 95,99.5 --seeds 0 --method-param embeddings=frozen",
        # The LfF family at its official step budget (50k steps at batch 256 = 213 epochs), DisEnt and BE
        # also at their official learning rate (issue 25).
        "--grid extended --datasets cmnist --methods disent,lff_be --ratios 99.5 --seeds 0 --epochs 213 "
        "--method-param lr=0.01",
        "--grid extended --datasets cmnist --methods lc,selecmix --ratios 99.5 --seeds 0 --epochs 213",
        # DisEnt's full official Colored MNIST recipe: also its StepLR decay (10k steps, gamma 0.5).
        "--grid extended --datasets cmnist --methods disent --ratios 99.5 --seeds 0 --epochs 213 "
        "--method-param lr=0.01 --method-param lr_decay_step=10000",
    ],
}


def resolved_keys(command: str, scratch: Path) -> set[str]:
    """The trial keys `python run_all.py COMMAND --dry-run` lists for an empty store."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main([*shlex.split(command), "--dry-run", "--results", str(scratch)])
    assert code == 0, f"{command}: --dry-run exited {code}"
    return {line.split()[0] for line in out.getvalue().splitlines() if re.match(r"[0-9a-f]{20}  ", line)}


def test_every_shipped_set_is_listed():
    assert {p.name for p in REFERENCE.iterdir() if (p / "trials").is_dir()} == set(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_keys_equal_what_their_commands_resolve_today(name, tmp_path):
    expected: set[str] = set()
    for command in SHIPPED[name]:
        expected |= resolved_keys(command, tmp_path / "empty")
    shipped = set(ResultStore(REFERENCE / name).trials()["trial_key"])
    assert sorted(shipped - expected) == [], f"{name}: shipped trials no command resolves to today"
    assert sorted(expected - shipped) == [], f"{name}: trials its commands resolve to but the set lacks"
