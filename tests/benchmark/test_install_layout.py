"""Nothing assumes a checkout: the generated-data cache defaults to the user's cache folder (not the
working directory), the commit is read only from a checkout of this project, and a cluster run
from an installed package ships the package, not the folder above it (site-packages)."""

from pathlib import Path

import debiasbench
from debiasbench import benchmark
from debiasbench.benchmark import paths
from debiasbench.benchmark.experiments import driver, ray_backend


def test_the_cache_defaults_to_the_users_cache_folder_wherever_the_command_starts(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert paths.resolve_cache_dir() == (tmp_path / "xdg" / "debiasbench").resolve()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.resolve_cache_dir() == (tmp_path / "home" / ".cache" / "debiasbench").resolve()
    # Overridable as before: the environment, then the option.
    monkeypatch.setenv(paths.CACHE_DIR_ENV, str(tmp_path / "env"))
    assert paths.resolve_cache_dir() == (tmp_path / "env").resolve()
    assert paths.resolve_cache_dir(tmp_path / "flag") == (tmp_path / "flag").resolve()


def test_a_checkout_is_recognised_and_an_installed_layout_is_not(tmp_path, monkeypatch):
    assert paths.checkout_root() == Path(benchmark.__file__).resolve().parents[1]  # this checkout
    site = tmp_path / "site-packages"
    (site / "benchmark").mkdir(parents=True)
    monkeypatch.setattr(paths, "_PACKAGE_ROOT", site)
    assert paths.checkout_root() is None
    # Another project's checkout around the environment is not this project's.
    (site / "run_all.py").write_text("")
    (site / "pyproject.toml").write_text('[project]\nname = "someone-else"\n')
    assert paths.checkout_root() is None


def test_an_installed_package_reports_its_version_without_a_foreign_commit(monkeypatch):
    monkeypatch.setattr(driver, "REPO_ROOT", None)
    assert driver.code_version() == debiasbench.__version__
    monkeypatch.setattr(driver, "REPO_ROOT", paths.checkout_root())
    assert driver.code_version().startswith(debiasbench.__version__ + "+")  # this checkout's commit


def test_a_cluster_run_ships_the_checkout_or_else_the_packages(monkeypatch):
    env = ray_backend.cluster_runtime_env()
    assert env["working_dir"] == str(paths.checkout_root()) and "/results/" in env["excludes"]
    monkeypatch.setattr(ray_backend, "REPO_ROOT", None)
    env = ray_backend.cluster_runtime_env()
    assert "working_dir" not in env
    assert [m.__name__ for m in env["py_modules"]] == ["debiasbench"]  # one package, everything inside it
