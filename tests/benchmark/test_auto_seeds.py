"""--seeds auto on the smoke grid: a cell whose leading comparison is resolved after seeds 0, 1, 2
stops there; one that is not gets more seeds, in rounds, up to --max-seeds. The rounds' runner is
replaced by one that writes each trial's final accuracy straight into the store under its real key
(no training), so the decisions are tested on known numbers; the trials are ordinary keyed trials."""

import json
from dataclasses import replace

import pytest
from report_kit import syn

from debiasbench.benchmark.experiments.auto_seeds import AutoSeeds, AutoSeedsOutcome, run_auto_seeds
from debiasbench.benchmark.experiments.driver import RunOptions, RunSummary
from debiasbench.benchmark.experiments.resolve import resolve_trial
from debiasbench.benchmark.paper.grids import build_grid
from debiasbench.benchmark.report.loading import load_store
from debiasbench.benchmark.store import ResultStore
from debiasbench.cli import main


def accuracy(ratio: float, method: str, seed: int) -> float:
    if ratio == 99.0:  # far apart: LfF 60 +- 1 against Vanilla 30 +- 1, resolved with three seeds
        return (0.60 if method == "lff" else 0.30) + 0.01 * (seed % 3 - 1)
    # 99.5: the two alternate around 50, so their difference's interval always spans 0
    sign = 1 if (seed + (method == "lff")) % 2 else -1
    return 0.50 + 0.05 * sign


def fake_run(log):
    def run(configs, options: RunOptions) -> RunSummary:
        store = ResultStore(options.results)
        store.ensure_writable()
        done = []
        for config in configs:
            trial = resolve_trial(config)
            value = accuracy(float(config.dataset_params["ratio"]), config.method, config.trial_seed)
            syn.simple(store, json.loads(trial.to_json()), (value, value - 0.1), key=trial.key)
            done.append(trial.key)
        log.append(sorted((c.dataset_params["ratio"], c.method, c.trial_seed) for c in configs))
        return RunSummary(scheduled=len(configs), completed=done)

    return run


@pytest.fixture
def smoke_two_cells():
    smoke = build_grid("smoke")  # Vanilla and LfF on Colored MNIST 99%, 1 epoch
    return smoke + [replace(c, dataset_params={**c.dataset_params, "ratio": 99.5}) for c in smoke]


def test_resolved_cell_stops_at_three_seeds_and_the_other_grows_to_the_cap(smoke_two_cells, tmp_path):
    log = []
    options = RunOptions(results=str(tmp_path / "store"))
    outcome = run_auto_seeds(smoke_two_cells, options, AutoSeeds(max_seeds=5), run=fake_run(log))
    # Round 1: seeds 0-2 of all four entries; then one seed more per round for both methods at 99.5%.
    assert log[0] == sorted((r, m, s) for r in (99.0, 99.5) for m in ("lff", "vanilla") for s in (0, 1, 2))
    assert log[1:] == [[(99.5, "lff", s), (99.5, "vanilla", s)] for s in (3, 4)]
    trials = load_store(tmp_path / "store").trials
    seeds = trials.groupby([trials["params"].map(lambda p: p["ratio"]), "method"])["trial_seed"].apply(sorted)
    assert seeds.to_dict() == {
        (99.0, "lff"): [0, 1, 2],
        (99.0, "vanilla"): [0, 1, 2],
        (99.5, "lff"): [0, 1, 2, 3, 4],
        (99.5, "vanilla"): [0, 1, 2, 3, 4],
    }
    by_ratio = {row.condition: row for row in outcome.resolution.itertuples(index=False)}
    resolved = by_ratio["ratio=99.0"]
    assert resolved.resolved and (resolved.n_a, resolved.n_b) == (3, 3) and resolved.method_a == "LfF"
    capped = by_ratio["ratio=99.5"]
    assert not capped.resolved and (capped.n_a, capped.n_b) == (5, 5)
    assert "NOT resolved (seed cap reached)" in outcome.describe()


def test_a_precision_target_resolves_the_close_cell(smoke_two_cells, tmp_path):
    # At 99.5% with seeds 0-2: one method 45, 55, 45 and the other 55, 45, 55 -> difference 3.33 with a
    # Welch interval of about +-12.8: resolved once the target allows +-15 points, so no seed is added.
    log = []
    options = RunOptions(results=str(tmp_path / "store"))
    outcome = run_auto_seeds(smoke_two_cells, options, AutoSeeds(max_seeds=5, precision=15.0), run=fake_run(log))
    assert len(log) == 1 and outcome.resolution["resolved"].all()


def test_added_trials_are_ordinary_keyed_trials_and_a_rerun_adds_nothing(smoke_two_cells, tmp_path):
    options = RunOptions(results=str(tmp_path / "store"))
    run_auto_seeds(smoke_two_cells, options, AutoSeeds(max_seeds=4), run=fake_run([]))
    store = load_store(tmp_path / "store")
    for key, cfg in zip(store.trials["trial_key"], store.trials["cfg"]):
        config = build_grid("smoke")[0]
        config = replace(
            config,
            method=cfg["method"],
            dataset_params={**config.dataset_params, "ratio": cfg["dataset_params"]["ratio"]},
            trial_seed=cfg["trial_seed"],
        )
        assert resolve_trial(config).key == key  # the key a plain --seeds N run gives that seed
    log = []
    run_auto_seeds(smoke_two_cells, options, AutoSeeds(max_seeds=4), run=fake_run(log))
    assert len(log) == 2  # the first three seeds again (skipped by the real runner), then the fourth once more


def test_command_line(tmp_path, capsys):
    code = main(["--grid", "smoke", "--seeds", "auto", "--dry-run", "--results", str(tmp_path / "s")])
    assert code == 0 and "6 trial(s) to run" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--grid", "smoke", "--seeds", "auto,1"])
    assert main(["--grid", "smoke", "--seeds", "auto", "--search", "--methods", "lff"]) == 2
    assert "--seeds auto" in capsys.readouterr().err
    assert main(["--grid", "smoke", "--seeds", "auto", "--max-seeds", "2", "--results", str(tmp_path / "s")]) == 2
    assert "--max-seeds must be at least 3" in capsys.readouterr().err


def fake_validation_run(log):
    """Validation-protocol trials at 99.5%: at the final epoch the two alternate around 50 (never
    resolved); at epoch 1, which the hold-out's accuracy picks (0.9 against 0.8), LfF 70 and Vanilla
    30 (+-1 by seed): resolved with three seeds."""

    def run(configs, options: RunOptions) -> RunSummary:
        store = ResultStore(options.results)
        store.ensure_writable()
        for config in configs:
            trial = resolve_trial(config)
            final = accuracy(99.5, config.method, config.trial_seed)
            early = (0.70 if config.method == "lff" else 0.30) + 0.01 * (config.trial_seed % 3 - 1)
            config_json = json.loads(trial.to_json())
            valid = [(0.9, 0.5), (0.8, 0.5)]
            syn.simple(store, config_json, (final, final), first=(early, early), valid=valid, key=trial.key)
        log.append(sorted((c.method, c.trial_seed) for c in configs))
        return RunSummary(scheduled=len(configs), completed=[resolve_trial(c).key for c in configs])

    return run


@pytest.mark.parametrize(("selector", "rounds"), [("val_accuracy", 1), ("last", 2)])
def test_the_comparisons_read_each_trial_at_the_selectors_epoch(tmp_path, selector, rounds):
    grid = [
        replace(c, epochs=2, protocol="validation", dataset_params={**c.dataset_params, "ratio": 99.5})
        for c in build_grid("smoke")
    ]
    log = []
    settings = AutoSeeds(max_seeds=4, protocol="validation", selector=selector)
    outcome = run_auto_seeds(grid, RunOptions(results=str(tmp_path / "store")), settings, run=fake_validation_run(log))
    # The hold-out's epoch resolves LfF - Vanilla (40 points) at three seeds; the final epoch never does.
    assert len(log) == rounds and bool(outcome.resolution["resolved"].all()) == (selector == "val_accuracy")
    assert f"comparisons at selector {selector}" in outcome.describe()


def test_a_hold_out_selector_without_the_validation_protocol_is_refused(tmp_path, capsys):
    args = ["--grid", "smoke", "--seeds", "auto", "--selector", "val_accuracy", "--dry-run"]
    assert main([*args, "--results", str(tmp_path / "s")]) == 2
    assert "add --protocol validation" in capsys.readouterr().err
    assert main([*args, "--protocol", "validation", "--results", str(tmp_path / "s")]) == 0


def test_the_command_line_reads_the_rounds_and_the_report_at_the_selector(tmp_path, monkeypatch):
    seen = {}

    def rounds(configs, options, settings, run=None):
        seen["rounds"] = (settings.protocol, settings.selector)
        return AutoSeedsOutcome(rounds=[RunSummary(scheduled=len(configs))], selector=settings.selector)

    def report(results, **options):
        seen["report"] = (options["protocol"], options["selector"])
        return ""

    monkeypatch.setattr("debiasbench.benchmark.experiments.auto_seeds.run_auto_seeds", rounds)
    monkeypatch.setattr("debiasbench.benchmark.report.build.write_report", report)
    args = ["--grid", "smoke", "--seeds", "auto", "--protocol", "validation", "--selector", "val_worst_group"]
    main([*args, "--results", str(tmp_path / "s")])
    assert seen == {"rounds": ("validation", "val_worst_group"), "report": ("validation", "val_worst_group")}
