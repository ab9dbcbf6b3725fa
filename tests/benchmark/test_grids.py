import pytest

from debiasbench.benchmark.paper.axes import RATIOS
from debiasbench.benchmark.paper.grids import build_grid, deduplicate, table_trials


def test_paper_grid_shares_trials_between_tables():
    grid = build_grid("paper", seeds=[0])
    cmnist_vanilla_99 = [
        t
        for t in grid
        if t.dataset == "cmnist" and t.method == "vanilla" and t.dataset_params == {"ratio": 99.0, "difficulty": 4}
    ]
    assert len(cmnist_vanilla_99) == 1
    assert set(cmnist_vanilla_99[0].tables) == {2, 3, 4, 8, 9, 10}


def test_counts_match_table_definitions():
    # Tables 2/3: 4 ratios x (vanilla, lff, hex, 4 repair variants, group_dro); Table 10 adds lff_rubi.
    assert len(build_grid("paper", tables=[2, 3], datasets=["cmnist"], seeds=[0])) == 4 * 8
    assert len(build_grid("paper", tables=[2, 3, 10], datasets=["cmnist"])) == (4 * 8 + 4) * 3
    assert len(build_grid("paper", tables=[8, 9], datasets=["cmnist"], seeds=[0])) == 4 * 8
    assert len(table_trials(1)) == 3 * 2 * 2 and table_trials(7) == []


def test_filters_and_overrides():
    grid = build_grid("paper", tables=[2], datasets=["cmnist"], methods=["lff"], ratios=[99.5], seeds=[3, 4], epochs=5)
    assert len(grid) == 2
    assert {t.trial_seed for t in grid} == {3, 4} and all(t.epochs == 5 for t in grid)
    assert all(t.tables == (2,) for t in grid)


def test_dedup_merges_tables():
    from debiasbench.benchmark.trial import TrialConfig

    merged = deduplicate([TrialConfig("cmnist", "lff", tables=(2,)), TrialConfig("cmnist", "lff", tables=(8,))])
    assert len(merged) == 1 and merged[0].tables == (2, 8)


@pytest.mark.parametrize(
    "kwargs,message", [({"name": "nope"}, "unknown grid"), ({"name": "paper", "tables": [12]}, "unknown table")]
)
def test_bad_grid_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_grid(**kwargs)


def test_quick_grid_is_small_and_shows_the_main_effect_settings():
    grid = build_grid("quick")
    assert {t.dataset_params["ratio"] for t in grid} == {99.0, 99.5} and set(RATIOS) >= {99.0, 99.5}
    assert {"vanilla", "lff"} <= {t.method for t in grid}


def test_the_paper_grid_keys_are_pinned():
    """A refactor must not change what a trial is: the 579 keys of `--grid paper` are pinned (a
    deliberate protocol change, such as a new generator version, updates the fixture with it)."""
    from pathlib import Path

    from debiasbench.benchmark.experiments.planning import resolve_all

    pinned = (Path(__file__).resolve().parent.parent / "fixtures" / "paper_grid_keys.txt").read_text().split()
    keys = sorted(t.key for t in resolve_all(build_grid("paper")))
    assert len(keys) == 579 and keys == pinned


def test_the_user_grid_is_every_named_dataset_and_method():
    trials = build_grid("user", datasets=["image_table"], methods=["vanilla", "lff"], seeds=[0, 1])
    assert [(t.dataset, t.method, t.trial_seed) for t in trials] == [
        ("image_table", "vanilla", 0),
        ("image_table", "vanilla", 1),
        ("image_table", "lff", 0),
        ("image_table", "lff", 1),
    ]
    with pytest.raises(ValueError, match="--datasets x --methods"):
        build_grid("user", methods=["vanilla"])
