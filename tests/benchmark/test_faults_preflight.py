"""Fault tests for the driver's pre-flight and the command line (ISSUE 13, failures 1, 6 and 8):
every run that cannot work fails before Ray starts, with one line giving the numbers and the fix."""

import os
import pickle

import pytest
import torch

from debiasbench import cli
from debiasbench.benchmark.experiments import preflight
from debiasbench.benchmark.experiments.preflight import PreflightError, check_dataset_params, check_resources


def run(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def ray_never_starts(monkeypatch):
    import debiasbench.benchmark.experiments.driver as driver

    def refuse(*args, **kwargs):
        raise AssertionError("Ray must not start for a run the pre-flight refuses")

    monkeypatch.setattr(driver, "ray_init", refuse)
    monkeypatch.setattr(driver, "prepare_datasets", refuse)


def _smoke(tmp_path, *extra):
    return ("--grid", "smoke", "--results", str(tmp_path / "r"), "--progress", "off", "--no-report", *extra)


# -- failure 1: resources that no node has ------------------------------------------------------


def test_a_gpu_per_trial_without_a_gpu_fails_at_once_with_the_fix(capsys, tmp_path, no_gpu, ray_never_starts):
    code, _, err = run(capsys, *_smoke(tmp_path, "--gpus-per-trial", "1"))
    assert code == 2
    assert "--gpus-per-trial 1 asks for more GPUs than this machine has (no GPU)" in err
    assert "drop --gpus-per-trial" in err and err.count("\n") == 1


def test_more_cpus_per_trial_than_the_machine_has_fails_at_once(
    capsys, tmp_path, monkeypatch, no_gpu, ray_never_starts
):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    code, _, err = run(capsys, *_smoke(tmp_path, "--cpus-per-trial", "4"))
    assert code == 2
    assert "--cpus-per-trial 4 asks for more CPUs than this machine has (2)" in err
    assert "--cpus-per-trial 2 or less" in err


def test_a_trial_must_fit_on_one_node_of_a_cluster():
    nodes = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 8.0}]
    check_resources(8, 1, nodes, "any node")  # each fits somewhere
    with pytest.raises(PreflightError, match=r"--gpus-per-trial 2 asks for more GPUs than any node has \(1 GPU"):
        check_resources(1, 2, nodes, "any node")
    with pytest.raises(PreflightError, match="--cpus-per-trial 16 .* any node has \\(8\\)"):
        check_resources(16, 0, nodes, "any node")


def test_a_cluster_is_checked_node_by_node_after_joining_it(monkeypatch, no_gpu):
    import ray

    from debiasbench.benchmark.experiments.driver import RunOptions

    shut = []
    monkeypatch.setattr(preflight, "cluster_nodes", lambda: [{"CPU": 4.0}, {"CPU": 4.0, "GPU": 2.0}])
    monkeypatch.setattr(ray, "shutdown", lambda: shut.append(True))
    preflight.check_cluster_run(
        RunOptions(results="r", address="10.0.0.1:6379", cpus_per_trial=4, gpus_per_trial=2, device="cuda")
    )
    with pytest.raises(PreflightError, match="any node of the Ray cluster at 10.0.0.1:6379 has \\(4\\)"):
        preflight.check_cluster_run(RunOptions(results="r", address="10.0.0.1:6379", cpus_per_trial=8))
    assert shut == [True]  # Ray is left shut down


def test_device_cuda_without_cuda_is_refused_before_any_worker(capsys, tmp_path, no_gpu, ray_never_starts):
    code, _, err = run(capsys, *_smoke(tmp_path, "--device", "cuda"))
    assert code == 2 and "--device cuda but this machine has no CUDA GPU; use --device cpu" in err
    assert "Traceback" not in err


def test_device_checks_that_hold_with_a_gpu():
    with pytest.raises(PreflightError, match="Ray hides the GPUs"):
        preflight.check_device("cuda", 0.0, True, "this machine")
    with pytest.raises(PreflightError, match="numbered from 0"):
        preflight.check_device("cuda:1", 1.0, True, "this machine")
    with pytest.raises(PreflightError, match="unknown --device 'tpu'"):
        preflight.device_kind("tpu")
    preflight.check_device("cuda", 0.5, True, "this machine")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_max_concurrent_below_one_is_an_error(capsys, tmp_path, value):
    code, _, err = run(capsys, *_smoke(tmp_path, "--max-concurrent", value, "--dry-run"))
    assert code == 2 and f"--max-concurrent must be at least 1, got {value}" in err


# -- failure 8: filters, parameters, plugins ------------------------------------------------------


@pytest.mark.parametrize("ratios, missing", [("100", "100"), ("5", "5"), ("99,5", "5")])
def test_a_filter_that_matches_nothing_lists_the_grids_values(capsys, tmp_path, ratios, missing):
    code, _, err = run(capsys, *_smoke(tmp_path, "--ratios", ratios, "--dry-run"))
    assert code == 2
    assert f"--ratios {missing} matches no trial of grid 'smoke'; its ratios: 99" in err


def test_filters_that_match_nothing_together_say_what_each_could_be(capsys, tmp_path):
    code, _, err = run(
        capsys,
        "--grid",
        "paper",
        "--datasets",
        "bar",
        "--methods",
        "group_dro",
        "--dry-run",
        "--results",
        str(tmp_path),
    )
    assert code == 2 and "the filters together match no trial of grid 'paper'" in err
    assert "--methods could be" in err and "vanilla" in err


@pytest.mark.parametrize("flag, param", [("--ratios", "ratio"), ("--difficulties", "difficulty")])
def test_a_ratio_or_difficulty_filter_on_the_user_grid_names_the_dataset_parameter(capsys, tmp_path, flag, param):
    # The user grid's trials carry no ratio: the filter used to drop them all, run nothing and exit 0.
    args = ("--grid", "user", "--datasets", "cmnist", "--methods", "vanilla", flag, "4", "--dry-run")
    code, _, err = run(capsys, *args, "--results", str(tmp_path))
    assert code == 2 and f"use --dataset-param {param}=VALUE instead of {flag}" in err


def test_a_dataset_parameter_of_the_wrong_type_names_type_and_range(capsys, tmp_path):
    code, _, err = run(capsys, *_smoke(tmp_path, "--dataset-param", "ratio=abc", "--dry-run"))
    assert code == 2 and "'<' not supported" not in err
    assert "dataset parameter ratio='abc' of 'cmnist' must be a number" in err
    assert "strictly between 10" in err and "100" in err


def test_dataset_parameter_types_are_checked_by_name():
    with pytest.raises(PreflightError, match="unbiased_train='yes' .* must be true or false"):
        check_dataset_params("cmnist", {"unbiased_train": "yes"})  # bool("yes") would silently be True
    with pytest.raises(PreflightError, match="difficulty=4.0 .* must be an integer.*1, 2, 3 or 4"):
        check_dataset_params("cmnist", {"difficulty": 4.0})  # would silently make another trial key
    with pytest.raises(PreflightError, match="target=3 .* must be a string.*choose one of digit, color"):
        check_dataset_params("cmnist", {"target": 3})
    check_dataset_params("cmnist", {"ratio": 95, "difficulty": 4, "unbiased_train": False})
    check_dataset_params("image_table", {"bias": None, "ratio": 99.0})  # optional fields accept null


def test_a_plugin_with_a_syntax_error_or_an_unknown_module_is_one_line(capsys, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def method(:\n")
    code, _, err = run(capsys, "--plugin", str(broken), "--list")
    assert code == 2 and f"plugin '{broken}' has a syntax error at {broken}:1" in err and "Traceback" not in err
    code, _, err = run(capsys, "--plugin", "my_methds", "--list")
    assert code == 2 and "plugin module 'my_methds' not found" in err and "pass a path to a .py file" in err
    failing = tmp_path / "failing.py"
    failing.write_text("raise RuntimeError('no licence key')\n")
    code, _, err = run(capsys, "--plugin", str(failing), "--list")
    assert code == 2 and "failing.py:1: RuntimeError: no licence key" in err


# -- failure 6: the ImageNet weights file ------------------------------------------------------------


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture
def hub_dir(tmp_path):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


@pytest.mark.parametrize("kind", ["malicious", "truncated"])
def test_a_bad_weights_file_is_one_line_naming_the_file_and_pretrained_false(hub_dir, kind):
    from debiasbench.models.resnet18 import PretrainedWeightsError, imagenet_weights_path, load_imagenet_state_dict

    path = imagenet_weights_path()
    path.parent.mkdir(parents=True)
    if kind == "malicious":
        torch.save({"conv1.weight": _Payload()}, path)
    else:
        torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
        path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(PretrainedWeightsError) as error:
        load_imagenet_state_dict()
    message = str(error.value)
    assert str(path) in message and "--dataset-param pretrained=false" in message
    assert "weights_only=False" not in message and "documentation" not in message and "\n" not in message
    with pytest.raises(PretrainedWeightsError, match="damaged or not the published file"):
        preflight.check_imagenet_weights([_trial_needing_weights()])


def _trial_needing_weights():
    from debiasbench.benchmark.experiments.resolve import resolve_trial
    from debiasbench.benchmark.trial import TrialConfig

    return resolve_trial(TrialConfig("bar", "vanilla", epochs=1))


def test_the_driver_refuses_a_bad_weights_file_before_ray_starts(
    capsys, hub_dir, tmp_path, ray_never_starts, data_root
):
    from debiasbench.models.resnet18 import imagenet_weights_path

    if not (data_root / "BAR").is_dir():
        pytest.skip(f"BAR not found under {data_root}; set DEBIAS_DATA_ROOT")

    path = imagenet_weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"not": "weights"}))
    code, _, err = run(
        capsys,
        "--grid",
        "paper",
        "--datasets",
        "bar",
        "--methods",
        "vanilla",
        "--seeds",
        "0",
        "--results",
        str(tmp_path / "r"),
        "--data-root",  # the suite's data root as conftest finds it (../shared/data), not only $DEBIAS_DATA_ROOT
        str(data_root),
        "--progress",
        "off",
        "--no-report",
    )
    assert code == 2 and str(path) in err and "pretrained=false" in err and err.count("\n") == 1


# -- ISSUE 29, item 10: the paper grid on a machine without weights, CelebA and the full CIFAR-10 -------------


@pytest.fixture
def machine_like_the_test_box(tmp_path, data_root, monkeypatch, hub_dir):
    """A data root with MNIST, the partial CIFAR-10 copy and BAR but no CelebA, and no ImageNet weights."""
    from debiasbench.models import resnet18
    from debiasbench.models.resnet18 import PretrainedWeightsNotFoundError

    if not (data_root / "CIFAR10-subset").is_dir() or not (data_root / "BAR").is_dir():
        pytest.skip(f"the partial CIFAR-10 copy and BAR are not under {data_root}")
    root = tmp_path / "data"
    root.mkdir()
    for name in ("MNIST", "CIFAR10-subset", "BAR"):
        (root / name).symlink_to(data_root / name)

    def offline():
        raise PretrainedWeightsNotFoundError("ImageNet ResNet-18 weights not found (offline)")

    monkeypatch.setattr(resnet18, "ensure_imagenet_weights", offline)
    return root


def test_the_paper_grid_says_at_once_all_it_lacks_and_the_filter_that_runs_the_rest(
    capsys, tmp_path, machine_like_the_test_box, ray_never_starts
):
    code, _, err = run(capsys, "--grid", "paper", "--data-root", str(machine_like_the_test_box), *_smoke(tmp_path)[2:])
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "this run lacks the ImageNet ResNet-18 weights" in err and "needed by 27 trial(s) of bar, celeba" in err
    assert f"the raw data of celeba ({machine_like_the_test_box / 'celeba'}" in err
    assert "is a partial copy (about 5," in err  # the partial CIFAR-10, said now rather than after hours
    assert "552 of its 579 trial(s) can run as they are: add --datasets cmnist,ccifar1,ccifar2" in err
    assert "pretrained=false" not in err  # it would change the paper's protocol for CelebA and BAR


def test_a_run_lacking_only_the_weights_keeps_their_own_message(
    capsys, tmp_path, machine_like_the_test_box, ray_never_starts
):
    code, _, err = run(
        capsys,
        "--grid",
        "paper",
        "--datasets",
        "bar",
        "--data-root",
        str(machine_like_the_test_box),
        *_smoke(tmp_path)[2:],
    )
    assert code == 2 and "ImageNet ResNet-18 weights not found (offline)" in err and "lacks" not in err


def test_a_run_of_trials_that_all_lack_two_things_names_both(
    capsys, tmp_path, machine_like_the_test_box, ray_never_starts
):
    root = str(machine_like_the_test_box)
    code, _, err = run(capsys, "--grid", "paper", "--datasets", "celeba", "--data-root", root, *_smoke(tmp_path)[2:])
    assert code == 2 and err.count("\n") == 1
    assert "lacks the ImageNet ResNet-18 weights" in err and "the raw data of celeba" in err
    assert "none of its 18 trial(s) can run without it" in err
