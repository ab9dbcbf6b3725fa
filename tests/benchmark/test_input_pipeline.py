"""On-device augmentation and normalisation (docs/architecture.md#performance): per-sample random crop from zero padding
and horizontal flip, checked against the offsets and flips the generator actually drew."""

import torch

from debiasbench.benchmark.training.input_pipeline import DeviceSplit, random_crop, random_flip
from debiasbench.datasets.base import InputSpec, Split

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def images(n: int = 16) -> torch.Tensor:
    return torch.randint(1, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_crop_equals_padded_image_shifted_by_the_drawn_offset():
    x = images()
    out = random_crop(x, 4, torch.Generator().manual_seed(5))
    replay = torch.Generator().manual_seed(5)
    dy = torch.randint(0, 9, (len(x),), generator=replay)
    dx = torch.randint(0, 9, (len(x),), generator=replay)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    for i in range(len(x)):
        assert torch.equal(out[i], padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32])
    assert len(set(zip(dy.tolist(), dx.tolist()))) > 1  # per-sample offsets
    # Exactly the pixels that came from the padding are zero (the images themselves have none).
    for i in range(len(x)):
        inside = (32 - abs(int(dy[i]) - 4)) * (32 - abs(int(dx[i]) - 4))
        assert int((out[i, 0] == 0).sum()) == 32 * 32 - inside


def test_flip_is_exact_and_per_sample():
    x = images()
    out = random_flip(x, torch.Generator().manual_seed(9))
    flips = torch.rand(len(x), generator=torch.Generator().manual_seed(9)) < 0.5
    assert 0 < int(flips.sum()) < len(x)
    for i in range(len(x)):
        assert torch.equal(out[i], x[i].flip(-1) if flips[i] else x[i])


def test_device_split_normalises_and_augments():
    x = images(8)
    split = Split(images=x, targets=torch.arange(8), biases=torch.zeros(8, dtype=torch.long))
    spec = InputSpec(scale=1 / 255, mean=MEAN, std=STD, crop_padding=4, horizontal_flip=True)
    device_split = DeviceSplit(split, spec, torch.device("cpu"))
    index = torch.arange(8)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(device_split.inputs(index), (x.float() / 255 - mean) / std)
    augmented = device_split.inputs(index, augment=True, generator=torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    expected = random_flip(random_crop(x, 4, replay), replay)
    torch.testing.assert_close(augmented, (expected.float() / 255 - mean) / std)
    torch.testing.assert_close(device_split.to_unit(augmented), expected.float() / 255)


def test_row_subset_reads_the_same_rows_on_and_off_the_device_without_copying_off_it():
    x = images(10)
    split = Split(images=x, targets=torch.arange(10), biases=torch.arange(10) % 3)
    rows = torch.tensor([7, 2, 9, 4])
    on = DeviceSplit(split, InputSpec(), torch.device("cpu"), keep_on_device=True, rows=rows)
    off = DeviceSplit(split, InputSpec(), torch.device("cpu"), keep_on_device=False, rows=rows)
    for part in (on, off):
        assert len(part) == 4 and part.targets.tolist() == [7, 2, 9, 4] and part.biases.tolist() == [1, 2, 0, 1]
        torch.testing.assert_close(part.inputs(torch.tensor([3, 0])), x[[4, 7]].float() / 255)
    assert off.images.data_ptr() == x.data_ptr()  # the full array, shared: nothing duplicated in memory
