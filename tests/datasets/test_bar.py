"""BAR on a tiny fixture in the published layout (train/, test/, metadata.json), plus the real
dataset's Table 7 counts when the offline copy is present."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from debiasbench.benchmark.experiments.resolve import InvalidTrialError, resolve_trial
from debiasbench.benchmark.training.trainer import TrainEnv, train_trial
from debiasbench.benchmark.trial import TrialConfig
from debiasbench.datasets.bar import BAR, CLASSES, PUBLISHED_COUNTS, class_counts, stored_size
from debiasbench.datasets.base import DATASETS, DataNotFoundError, DataPaths

# Per class: (metadata cls, file prefix on disk, solid colour)
FIXTURE_CLASSES = [
    ("climbing", "climbing", (200, 30, 30)),
    ("diving", "diving", (30, 200, 30)),
    ("fishing", "fishing", (30, 30, 200)),
    ("racing", "racing", (200, 200, 30)),
    ("throwing", "throwing", (30, 200, 200)),
    ("pole vaulting", "pole vaulting", (200, 30, 200)),
]
TRAIN_PER_CLASS, TEST_PER_CLASS = (4, 3, 2, 4, 3, 2), (2, 1, 2, 1, 2, 1)


def make_bar(root, train_counts=TRAIN_PER_CLASS, test_counts=TEST_PER_CLASS):
    """Solid-colour JPEGs of varied aspect ratios named <action>_<n>.jpg, and metadata.json in the
    published format (keys without extension; cls, train, source fields). One vaulting file uses
    the short `vaulting_` prefix that some copies have."""
    bar = root / "BAR"
    metadata = {}
    sizes = [(40, 30), (30, 50), (64, 48), (33, 33)]
    for (cls, prefix, colour), n_train, n_test in zip(FIXTURE_CLASSES, train_counts, test_counts):
        number = 0
        for split, count in (("train", n_train), ("test", n_test)):
            (bar / split).mkdir(parents=True, exist_ok=True)
            for _ in range(count):
                key = f"{prefix}_{number}"
                file_prefix = "vaulting" if (cls == "pole vaulting" and number == 1) else prefix
                Image.new("RGB", sizes[number % len(sizes)], colour).save(bar / split / f"{file_prefix}_{number}.jpg")
                metadata[key] = {"cls": cls, "train": split == "train", "source": "fixture"}
                number += 1
    (bar / "metadata.json").write_text(json.dumps(metadata, indent=4))
    return bar


@pytest.fixture
def bar_paths(tmp_path):
    make_bar(tmp_path)
    return DataPaths(tmp_path, tmp_path / "cache", allow_download=False)


def _load(paths, **params):
    return BAR.load(BAR.make_params({"resolution": 16, "pretrained": False, **params}), paths)


def test_registered_without_bias_labels():
    assert DATASETS.get("bar") is BAR and BAR.has_bias_labels is False
    protocol = BAR.train_protocol(BAR.make_params())
    assert (protocol.lr, protocol.batch_size, protocol.epochs, protocol.optimizer) == (1e-4, 256, 90, "adam")


def test_fixture_loads_with_classes_counts_and_pipeline(bar_paths):
    data = _load(bar_paths)
    size = stored_size(16)
    assert size == 18 and stored_size(224) == 256
    assert data.train.images.shape == (sum(TRAIN_PER_CLASS), 3, size, size)
    assert data.test.images.shape == (sum(TEST_PER_CLASS), 3, size, size)
    assert data.train.images.dtype == torch.uint8
    assert data.class_names == list(CLASSES) and data.num_classes == 6
    assert data.train.targets.bincount(minlength=6).tolist() == list(TRAIN_PER_CLASS)
    assert data.test.targets.bincount(minlength=6).tolist() == list(TEST_PER_CLASS)
    assert data.train.biases is None and data.test.biases is None
    assert data.num_bias_values is None and data.aligned_bias is None
    spec = data.input_spec
    assert spec.crop_size == 16 and spec.random_resized_crop and spec.horizontal_flip
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    assert data.model == "resnet18"
    assert data.model_kwargs == {"pretrained": False, "freeze_backbone": False}
    assert _load(bar_paths, freeze_backbone=True).model_kwargs["freeze_backbone"] is True


def test_pixels_are_the_decoded_images(bar_paths):
    data = _load(bar_paths)
    colours = torch.tensor([c for _, _, c in FIXTURE_CLASSES], dtype=torch.float32)
    for split in (data.train, data.test):
        mean_colour = split.images.float().mean((2, 3))
        assert (mean_colour - colours[split.targets]).abs().max() < 8  # JPEG error only


def test_shorter_side_resize_then_centre_crop(tmp_path):
    bar = make_bar(tmp_path)
    # A wide image in three vertical bands: resizing the shorter side and centre-cropping keeps
    # only the middle band.
    band = np.zeros((30, 90, 3), dtype=np.uint8)
    band[:, :30] = (255, 0, 0)
    band[:, 30:60] = (0, 255, 0)
    band[:, 60:] = (0, 0, 255)
    Image.fromarray(band).save(bar / "train" / "climbing_0.jpg", quality=100)
    data = _load(DataPaths(tmp_path, tmp_path / "cache"))
    first = data.train.images[0].float()  # class order then number: climbing_0 comes first
    assert first[1].mean() > 230 and first[0].mean() < 25 and first[2].mean() < 25


def test_cache_is_reused_and_keyed_by_resolution(bar_paths, monkeypatch):
    a = _load(bar_paths)
    import debiasbench.datasets.bar as bar_module

    def fail(*args, **kwargs):
        raise AssertionError("decoded again although cached")

    monkeypatch.setattr(bar_module, "decode_images", fail)
    b = _load(bar_paths, pretrained=True)  # pretrained does not change the cached images
    assert torch.equal(a.train.images, b.train.images)
    with pytest.raises(AssertionError, match="decoded again"):
        _load(bar_paths, resolution=24)


def test_missing_data_names_the_layout(tmp_path):
    with pytest.raises(DataNotFoundError, match="metadata.json"):
        _load(DataPaths(tmp_path, tmp_path / "cache"))
    bar = make_bar(tmp_path)
    (bar / "test" / "diving_3.jpg").unlink()
    with pytest.raises(DataNotFoundError, match="diving_3.jpg"):
        _load(DataPaths(tmp_path, tmp_path / "cache"))


def test_unknown_class_is_rejected(tmp_path):
    bar = make_bar(tmp_path)
    metadata = json.loads((bar / "metadata.json").read_text())
    metadata["climbing_0"]["cls"] = "surfing"
    (bar / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="surfing"):
        _load(DataPaths(tmp_path, tmp_path / "cache"))


def test_methods_needing_bias_labels_are_refused():
    from debiasbench.methods.base import METHODS, Supervision

    labelled = [name for name, cls in METHODS if cls.supervision is Supervision.BIAS_LABELS]
    if not labelled:
        pytest.skip("no method with bias-label supervision is registered")
    with pytest.raises(InvalidTrialError, match="bias labels"):
        resolve_trial(TrialConfig("bar", labelled[0]))


def test_trial_end_to_end(bar_paths):
    trial = resolve_trial(TrialConfig("bar", "vanilla", {"resolution": 16, "pretrained": False}, epochs=1))
    assert trial.dataset_params == {"resolution": 16, "pretrained": False, "freeze_backbone": False}
    trial = dataclasses.replace(trial, batch_size=8)
    output = train_trial(trial, TrainEnv(paths=bar_paths, device="cpu", num_threads=1))
    rows = list(zip(*(output.metrics[c] for c in ("epoch", "role", "split", "subset", "target", "metric", "value"))))
    counts = {r[4]: r[6] for r in rows if r[2] == "test" and r[3] == "class" and r[5] == "count"}
    assert counts == {c: float(n) for c, n in enumerate(TEST_PER_CLASS)}
    per_class = [r[6] for r in rows if r[2] == "test" and r[3] == "class" and r[5] == "accuracy"]
    assert len(per_class) == 6 and all(0.0 <= v <= 1.0 for v in per_class)
    mean = [r[6] for r in rows if r[2] == "test" and r[3] == "all" and r[5] == "accuracy"]
    assert mean == [pytest.approx(float(np.mean(per_class)))]
    assert not any(r[3] in ("aligned", "conflicting") for r in rows)
    assert output.predictions["prediction"].shape == (sum(TEST_PER_CLASS),)


@pytest.mark.real_data
def test_real_bar_counts_match_table_7(data_root):
    if not (data_root / "BAR" / "metadata.json").is_file():
        pytest.skip(f"BAR not found under {data_root}")
    counts = class_counts(DataPaths(data_root, data_root / "unused-cache"))
    for split in ("train", "test"):
        assert tuple(counts[split][c] for c in CLASSES) == PUBLISHED_COUNTS[split]
    assert sum(counts["train"].values()) == 1941 and sum(counts["test"].values()) == 654
    # Every listed image exists under the published file names.
    from debiasbench.datasets.bar import read_index

    index = read_index(DataPaths(data_root, data_root / "unused-cache"))
    assert [len(index[s][0]) for s in ("train", "test")] == [1941, 654]
    assert tuple(np.bincount(index["train"][1]).tolist()) == PUBLISHED_COUNTS["train"]


def test_prepare_fails_early_without_imagenet_weights(bar_paths, tmp_path, monkeypatch):
    import urllib.error

    from debiasbench.models.resnet18 import PretrainedWeightsNotFoundError

    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "empty_hub"))
    monkeypatch.setattr(
        torch.hub, "load_state_dict_from_url", lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("offline"))
    )
    try:
        with pytest.raises(PretrainedWeightsNotFoundError, match="resnet18-f37072fd.pth"):
            BAR.prepare(BAR.make_params({"resolution": 16}), bar_paths)
        BAR.prepare(BAR.make_params({"resolution": 16, "pretrained": False}), bar_paths)  # no weights needed
    finally:
        torch.hub.set_dir(previous)
