"""One import name: what the wheel installs is `debiasbench` alone (its subpackages are the
checkout's top-level folders, mapped by pyproject's package-dir), the old top-level names fail with
a message naming the new one, and `python run_all.py`, `python -m debiasbench` and the installed
`debiasbench` command are one command line."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import debiasbench
from debiasbench.benchmark.plugins import PluginError, load_plugins

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
OLD_NAMES = ("benchmark", "methods", "datasets", "models", "tools")  # written out: the test pins them


def test_pyproject_lists_every_package_folder_under_its_new_name():
    mapped = {"debiasbench": "debiasbench", **PYPROJECT["package-dir"]}
    assert sorted(PYPROJECT["package-dir"].values()) == sorted(OLD_NAMES)
    expected = set()
    for package, folder in mapped.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            expected.add(".".join((package, *relative)))
    assert set(PYPROJECT["packages"]) == expected  # a new subpackage must be listed to be installed


def test_the_checkout_joins_its_folders_to_the_package():
    import debiasbench.datasets
    import debiasbench.methods

    assert Path(debiasbench.methods.__file__).parent == REPO / "methods"
    assert Path(debiasbench.datasets.__file__).parent == REPO / "datasets"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["version"]
    assert PYPROJECT["dynamic"]["version"] == {"attr": "debiasbench.__version__"}  # the one version source


@pytest.mark.parametrize("name", OLD_NAMES)
def test_an_old_import_names_the_new_one(name):
    done = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1 and f"debiasbench.{name}" in done.stderr.splitlines()[-1]


def test_a_plugin_with_an_old_import_is_told_the_new_one(tmp_path, monkeypatch):
    plugin = tmp_path / "my_method.py"
    plugin.write_text("from methods.base import Method\n")
    # Installed, `methods` does not exist at all (here: the checkout's folder is hidden).
    monkeypatch.setitem(sys.modules, "methods", None)
    with pytest.raises(PluginError, match=r"'methods\.base', which is now 'debiasbench\.methods\.base'"):
        load_plugins([str(plugin)])


def test_the_three_spellings_of_the_command_line_agree():
    outputs = []
    for command in (["run_all.py"], ["-m", "debiasbench"]):
        done = subprocess.run([sys.executable, *command, "--help"], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0].startswith("usage: run_all.py") and outputs[1].startswith("usage: python -m debiasbench")
    options = [text[text.index("options:") :] for text in outputs]
    assert options[0] == options[1] and "--grid" in options[0]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"debiasbench": "debiasbench.cli:main"}


def test_the_wheel_holds_one_top_level_name(tmp_path):
    import setuptools

    if tuple(int(p) for p in setuptools.__version__.split(".")[:2]) < (77, 0):
        pytest.skip(f"setuptools {setuptools.__version__} < 77 cannot build this project without isolation")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("debiasbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"debiasbench", f"debiasbench-{debiasbench.__version__}.dist-info"}
    for expected in (
        "debiasbench/cli.py",
        "debiasbench/methods/lff.py",
        "debiasbench/datasets/corruptions/__init__.py",
        "debiasbench/tools/gpu_check.py",
        "debiasbench/benchmark/report/templates/index.html.j2",
    ):
        assert expected in names
    assert not any("/tests/" in n or n.endswith("run_all.py") for n in names)
