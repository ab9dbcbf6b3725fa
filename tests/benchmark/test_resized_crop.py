"""On-device RandomResizedCrop / centre crop options of InputSpec and DeviceSplit."""

import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from debiasbench.benchmark.training.input_pipeline import DeviceSplit, center_crop, resized_crop, resized_crop_boxes
from debiasbench.datasets.base import InputSpec, Split


def _split(n=6, size=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return Split(images, torch.arange(n) % 2, None)


def test_defaults_leave_the_pipeline_unchanged():
    spec = InputSpec()
    assert spec.crop_size is None and not spec.random_resized_crop
    split = _split()
    ds = DeviceSplit(split, spec, torch.device("cpu"))
    x = ds.inputs(torch.arange(6), augment=True, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x, split.images.float() / 255.0, atol=1e-6)


def test_random_resized_crop_needs_a_size():
    with pytest.raises(ValueError, match="crop_size"):
        InputSpec(random_resized_crop=True)


def test_centre_crop_matches_torchvision_and_is_used_for_evaluation():
    split = _split(size=21)
    spec = InputSpec(scale=1.0, crop_size=16, random_resized_crop=True)
    ds = DeviceSplit(split, spec, torch.device("cpu"))
    x = ds.inputs(torch.arange(6))
    assert x.shape == (6, 3, 16, 16)
    assert torch.equal(x, TF.center_crop(split.images, [16, 16]).float())
    assert torch.equal(center_crop(split.images, 21), split.images)
    with pytest.raises(ValueError, match="exceeds"):
        center_crop(split.images, 22)


def test_boxes_follow_torchvision_sampling_ranges():
    n, h, w = 20000, 73, 73
    boxes = resized_crop_boxes(
        n, h, w, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(0), torch.device("cpu")
    )
    top, left, bh, bw = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all() and (left + bw <= w).all()
    area = bh * bw / (h * w)
    # Rounding of the sides moves area and ratio a little beyond the nominal ranges.
    assert area.min() > 0.06 and area.max() <= 1.0
    ratio = bw / bh
    assert ratio.min() > 0.7 and ratio.max() < 1.4
    # Same distribution as torchvision's own sampler (compared through summary statistics).
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    ref = torch.tensor(
        [RandomResizedCrop.get_params(torch.empty(1, h, w), [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(4000)],
        dtype=torch.float64,
    )
    ref_area = ref[:, 2] * ref[:, 3] / (h * w)
    assert abs(float(area.mean()) - float(ref_area.mean())) < 0.02
    assert abs(float(area.std()) - float(ref_area.std())) < 0.02
    assert abs(float(top.mean()) - float(ref[:, 0].mean())) < 1.0
    assert abs(float(ratio.mean()) - float((ref[:, 3] / ref[:, 2]).mean())) < 0.02
    # Offsets use the whole free range: some crops touch the far edges.
    assert ((top + bh) == h).any() and ((left + bw) == w).any()


def test_box_fallback_is_the_central_ratio_clamped_crop():
    # An impossible scale range (more than the image) forces torchvision's fallback.
    boxes = resized_crop_boxes(4, 10, 30, (1.5, 2.0), (3 / 4, 4 / 3), None, torch.device("cpu"))
    expected_w = round(10 * 4 / 3)
    assert torch.equal(boxes, torch.tensor([[0.0, (30 - expected_w) // 2, 10.0, expected_w]] * 4, dtype=boxes.dtype))


def test_resized_crop_equals_bilinear_resize_when_enlarging():
    images = _split(n=2).images
    boxes = torch.tensor([[2.0, 3.0, 10.0, 12.0], [0.0, 0.0, 20.0, 20.0]])
    out = resized_crop(images, boxes, 24)
    ref = torch.stack(
        [TF.resized_crop(images[i].float(), *[int(v) for v in boxes[i]], [24, 24], antialias=True) for i in range(2)]
    )
    # Inside the box the sampling points coincide; at the border torchvision clamps to the crop
    # while roi_align reads the neighbouring pixels of the full image.
    assert torch.allclose(out[:, :, 1:-1, 1:-1], ref[:, :, 1:-1, 1:-1], atol=1e-3)
    assert torch.allclose(out[1], ref[1], atol=1e-3)  # the whole image: no outside pixels


def test_resized_crop_is_antialiased_when_shrinking():
    # A smooth image: shrinking 64 -> 16 agrees with torchvision's anti-aliased resize.
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    smooth = (127 + 100 * torch.sin(xx / 7) * torch.cos(yy / 9)).expand(1, 3, 64, 64)
    out = resized_crop(smooth, torch.tensor([[0.0, 0.0, 64.0, 64.0]]), 16)
    ref = TF.resize(smooth, [16, 16], antialias=True)
    assert (out - ref).abs().mean() < 1.5
    # Checkerboard noise averages out instead of aliasing.
    checker = ((xx + yy) % 2 * 255).expand(1, 3, 64, 64)
    out = resized_crop(checker, torch.tensor([[0.0, 0.0, 64.0, 64.0]]), 16)
    assert (out - 127.5).abs().max() < 1.0


def test_training_inputs_are_random_per_sample_and_seeded():
    split = _split(n=8, size=40)
    spec = InputSpec(scale=1.0, crop_size=16, random_resized_crop=True, horizontal_flip=True)
    ds = DeviceSplit(split, spec, torch.device("cpu"))
    index = torch.zeros(8, dtype=torch.long)  # the same image eight times
    a = ds.inputs(index, augment=True, generator=torch.Generator().manual_seed(1))
    b = ds.inputs(index, augment=True, generator=torch.Generator().manual_seed(1))
    c = ds.inputs(index, augment=True, generator=torch.Generator().manual_seed(2))
    assert a.shape == (8, 3, 16, 16)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len({tuple(v.flatten()[:20].tolist()) for v in a}) == 8  # different crops per sample
    assert math.isclose(float(a.min()), float(split.images[0].float().min()), abs_tol=255)
