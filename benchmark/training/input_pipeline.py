"""On-device batching, augmentation and normalisation (docs/architecture.md#performance).

Small datasets live on the training device as uint8 tensors; a batch is a gather by index, then
(training only) a random crop from the zero-padded image and a random horizontal flip, per sample
and without a Python loop, then scale and normalisation fused into one multiply-add.

Datasets stored larger than the model input (InputSpec.crop_size) get a centre crop for evaluation
and, for training, either the same centre crop or a RandomResizedCrop: one box per sample drawn as
torchvision does, all boxes resampled to the output size by one roi_align call.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from debiasbench.datasets.base import InputSpec, Split


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random crop of the original size from the image zero-padded by `padding`
    (as torchvision's RandomCrop(size, padding) on the uint8 image)."""
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    device = images.device
    offset_y = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    offset_x = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    rows = (offset_y[:, None] + torch.arange(h, device=device))[:, None, :, None]
    cols = (offset_x[:, None] + torch.arange(w, device=device))[:, None, None, :]
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image horizontally with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central size x size window (torchvision's CenterCrop offsets; images at least that large)."""
    height, width = images.shape[-2:]
    if size > height or size > width:
        raise ValueError(f"crop size {size} exceeds the stored image size {height}x{width}")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return images[..., top : top + size, left : left + size]


def resized_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """RandomResizedCrop boxes (top, left, h, w), shape (n, 4), sampled as torchvision's
    RandomResizedCrop.get_params: up to 10 draws of area scale and log-uniform aspect ratio, the
    first draw that fits wins, else the central crop clamped to the ratio range. All samples'
    draws are made at once."""
    attempts = 10
    area = float(height * width)
    u_area = torch.rand(n, attempts, generator=generator, device=device, dtype=torch.float64)
    u_ratio = torch.rand(n, attempts, generator=generator, device=device, dtype=torch.float64)
    target = area * (scale[0] + (scale[1] - scale[0]) * u_area)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u_ratio)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # index of the first fitting draw
    found = fits.any(1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    in_ratio = width / height
    if in_ratio < min(ratio):
        fallback_w, fallback_h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fallback_w, fallback_h = int(round(height * max(ratio))), height
    else:
        fallback_w, fallback_h = width, height
    w = torch.where(found, w, torch.full_like(w, fallback_w))
    h = torch.where(found, h, torch.full_like(h, fallback_h))
    u_top = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    u_left = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    top = torch.where(found, torch.floor(u_top * (height - h + 1)), torch.full_like(h, (height - fallback_h) // 2))
    left = torch.where(found, torch.floor(u_left * (width - w + 1)), torch.full_like(w, (width - fallback_w) // 2))
    return torch.stack([top, left, h, w], 1)


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Float (N, C, size, size): box (top, left, h, w) of each image resampled to size x size.
    roi_align with pixel-centre alignment equals bilinear resizing when enlarging and averages
    ceil(box/size)^2 bilinear samples per output pixel when shrinking (anti-aliased)."""
    n = images.shape[0]
    top, left, h, w = boxes.to(torch.float32).unbind(1)
    rois = torch.stack([torch.arange(n, device=images.device, dtype=torch.float32), left, top, left + w, top + h], 1)
    return roi_align(images.float(), rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def random_resized_crop(
    images: torch.Tensor,
    size: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Per-sample RandomResizedCrop(size, scale, ratio) of a batch, float output in pixel units."""
    n, _, height, width = images.shape
    boxes = resized_crop_boxes(n, height, width, scale, ratio, generator, images.device)
    return resized_crop(images, boxes, size)


class DeviceSplit:
    """A split held on `device` (or in host memory when too large), served as float batches.

    `rows` makes this the subset of `split` at those rows (the validation protocol's train and
    held-out parts). Off the device the images are not copied: each batch reads its rows from
    the full (possibly memory-mapped) array, so a 24 GB CelebA cache is never duplicated."""

    def __init__(
        self,
        split: Split,
        spec: InputSpec,
        device: torch.device,
        keep_on_device: bool = True,
        rows: torch.Tensor | None = None,
    ) -> None:
        self.device = device
        self.spec = spec
        self.on_device = keep_on_device
        self._rows = rows.cpu().long() if rows is not None and not keep_on_device else None
        targets, biases = split.targets, split.biases
        if rows is not None:
            targets, biases = targets[rows], biases[rows] if biases is not None else None
        if keep_on_device:
            self.images = (split.images[rows] if rows is not None else split.images).to(device)
        else:
            self.images = split.images
        self.targets = targets.to(device)
        self.biases = biases.to(device) if biases is not None else None
        channels = split.images.shape[1]
        mean = torch.tensor(spec.mean if spec.mean else (0.0,) * channels, device=device)
        std = torch.tensor(spec.std if spec.std else (1.0,) * channels, device=device)
        # (uint8 * scale - mean) / std == uint8 * (scale / std) - mean / std
        self._mul = (spec.scale / std).view(1, -1, 1, 1)
        self._add = (-mean / std).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self.targets)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs back to pixel intensities in [0, 1] (undoes scale and normalisation)."""
        return (x - self._add) / self._mul / 255.0

    def from_unit(self, unit: torch.Tensor) -> torch.Tensor:
        """Pixel intensities in [0, 1] to model inputs (the inverse of `to_unit`)."""
        return unit * 255.0 * self._mul + self._add

    def inputs(
        self, index: torch.Tensor, augment: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self.on_device:
            images = self.images[index]
        else:
            rows = index.cpu() if self._rows is None else self._rows[index.cpu()]
            images = self.images[rows].to(self.device, non_blocking=True)
        spec = self.spec
        if spec.crop_size is not None:
            if augment and spec.random_resized_crop:
                images = random_resized_crop(
                    images, spec.crop_size, spec.resized_crop_scale, spec.resized_crop_ratio, generator
                )
            else:
                images = center_crop(images, spec.crop_size)
        if augment:
            if self.spec.crop_padding:
                images = random_crop(images, self.spec.crop_padding, generator)
            if self.spec.horizontal_flip:
                images = random_flip(images, generator)
        return images.float() * self._mul + self._add
