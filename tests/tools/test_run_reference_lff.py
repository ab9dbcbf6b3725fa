"""tools/run_reference_lff: the plumbing around the authors' train.py, on a stand-in checkout.

The stand-in has the reference's file names and train() signature; it records what it was given
and writes the reference's result file, so the tests check what the tool passes, how it reads the
result and that it leaves the process as it found it. The real checkout is not in the test suite.
"""

import json
import os
import sys

import pytest
import torch

from debiasbench.datasets.cmnist import ColoredMNIST
from debiasbench.tools.run_reference_lff import run, summarise

STAND_IN_CONFIG = """
from sacred import Experiment
ex = Experiment("main")
"""

STAND_IN_TRAIN = """
import json, os
import numpy as np
import torch
from torch.utils.data import DataLoader
from config import ex


@ex.automain
def train(main_tag, dataset_tag, model_tag, data_dir, log_dir, device, target_attr_idx, bias_attr_idx,
          main_num_steps, main_valid_freq, main_batch_size, main_optimizer_tag, main_learning_rate,
          main_weight_decay):
    images = np.load(os.path.join(data_dir, dataset_tag, "train", "images.npy"), mmap_mode="r")
    loader = DataLoader(list(range(4)), num_workers=16, pin_memory=True)
    evaluations = main_num_steps // main_valid_freq
    accs = torch.full((evaluations, 10, 10), 0.5)
    accs[-1] = 0.25
    accs[-1].fill_diagonal_(1.0)
    os.makedirs(os.path.join(log_dir, "result", main_tag))
    torch.save({"valid/attrwise_accs": accs}, os.path.join(log_dir, "result", main_tag, "result.th"))
    seen = {"cwd_has_colors": os.path.isfile("data/resource/colors.th"), "num_workers": loader.num_workers,
            "pin_memory": loader.pin_memory, "steps": main_num_steps, "valid_freq": main_valid_freq,
            "model": model_tag, "lr": main_learning_rate, "batch": main_batch_size, "device": device,
            "images": list(images.shape), "draw": torch.rand(1).item()}
    with open(os.path.join(log_dir, "seen.json"), "w") as handle:
        json.dump(seen, handle)
"""


@pytest.fixture
def stand_in_checkout(tmp_path):
    checkout = tmp_path / "LfF"
    (checkout / "data" / "resource").mkdir(parents=True)
    (checkout / "data" / "resource" / "colors.th").write_bytes(b"")
    (checkout / "config.py").write_text(STAND_IN_CONFIG)
    (checkout / "train.py").write_text(STAND_IN_TRAIN)
    return checkout


def test_summary_reads_the_reference_group_accuracies_as_unbiased_aligned_and_conflicting() -> None:
    accs = torch.full((3, 10, 10), 0.5)
    accs[1] = 0.9
    accs[-1] = 0.25
    accs[-1].fill_diagonal_(1.0)
    summary = summarise(accs)
    assert summary["last"] == pytest.approx({"unbiased": 32.5, "aligned": 100.0, "conflicting": 25.0})
    assert summary["best_unbiased"] == pytest.approx(90.0) and summary["best_unbiased_after_epochs"] == 1
    assert summary["evaluations"] == 3 and summary["epochs_before_last_evaluation"] == 2
    # train_vanilla.py concatenates its evaluations instead of stacking them: the same reading.
    assert summarise(accs.reshape(30, 10)) == summary


def test_the_reference_runs_with_its_own_config_on_the_export_and_leaves_the_process_as_it_was(
    stand_in_checkout, mnist_paths, tmp_path
) -> None:
    params = ColoredMNIST.make_params({"ratio": 99.0})
    cwd, loader = os.getcwd(), torch.utils.data.DataLoader
    out = tmp_path / "run"
    summary = run(stand_in_checkout, "cmnist", params, mnist_paths, out, seed=3, epochs=2)

    seen = json.loads((out / "log_train_seed3" / "seen.json").read_text())
    assert seen["cwd_has_colors"], "the reference opens data/resource/colors.th relative to the checkout"
    assert (seen["num_workers"], seen["pin_memory"]) == (0, False)
    assert (seen["steps"], seen["valid_freq"], seen["model"]) == (470, 235, "MLP")
    assert (seen["lr"], seen["batch"], seen["device"]) == (1e-3, 256, "cpu")
    assert seen["images"] == [60000, 28, 28, 3]
    assert summary["last"] == pytest.approx({"unbiased": 32.5, "aligned": 100.0, "conflicting": 25.0})
    written = json.loads((out / "summary_train_cmnist_r99_s3.json").read_text())
    assert written["reference_dataset_tag"] == "ColoredMNIST-Skewed0.01-Severity4"
    assert written["last"] == summary["last"]

    assert os.getcwd() == cwd and torch.utils.data.DataLoader is loader
    assert "config" not in sys.modules and "sacred" not in sys.modules and "train" not in sys.modules

    # A second run reuses the export and, with the same seed, draws the same numbers.
    again = tmp_path / "again"
    (again / "data").mkdir(parents=True)
    os.symlink(out / "data" / "ColoredMNIST-Skewed0.01-Severity4", again / "data" / "ColoredMNIST-Skewed0.01-Severity4")
    run(stand_in_checkout, "cmnist", params, mnist_paths, again, seed=3, epochs=2)
    assert json.loads((again / "log_train_seed3" / "seen.json").read_text())["draw"] == seen["draw"]


def test_a_folder_that_is_not_a_checkout_is_refused_with_the_fix(tmp_path) -> None:
    with pytest.raises(SystemExit, match="not a checkout of alinlab/LfF .* clone it first"):
        run(tmp_path, "cmnist", ColoredMNIST.make_params({}), None, tmp_path / "out", seed=0)
