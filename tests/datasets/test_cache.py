import numpy as np

from debiasbench.datasets._cache import cache_key, load_or_build


def test_cache_builds_once_and_rebuilds_corrupt_entries(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(5), "b": np.ones((2, 3), dtype=np.uint8)}

    first = load_or_build(tmp_path, "fam", {"x": 1}, build)
    second = load_or_build(tmp_path, "fam", {"x": 1}, build)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["a"], second["a"])
    entry = tmp_path / "fam" / cache_key({"x": 1})
    (entry / "a.npy").write_bytes(b"truncated")  # a corrupt entry is regenerated, not trusted
    load_or_build(tmp_path, "fam", {"x": 1}, build)
    assert len(calls) == 2
    load_or_build(tmp_path, "fam", {"x": 2}, build)  # other parameters, other entry
    assert len(calls) == 3


def test_interrupted_build_leaves_no_entry(tmp_path):
    def failing():
        raise KeyboardInterrupt

    try:
        load_or_build(tmp_path, "fam", {"x": 1}, failing)
    except KeyboardInterrupt:
        pass
    assert not (tmp_path / "fam" / cache_key({"x": 1})).exists()
