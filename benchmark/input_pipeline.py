"""On-device batching, augmentation and normalisation (SPEC 8).

Small datasets live on the training device as uint8 tensors; a batch is a gather by index, then
(training only) a random crop from the zero-padded image and a random horizontal flip, per sample
and without a Python loop, then scale and normalisation fused into one multiply-add.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from datasets.base import InputSpec, Split


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


class DeviceSplit:
    """A split held on `device` (or in host memory when too large), served as float batches."""

    def __init__(self, split: Split, spec: InputSpec, device: torch.device, keep_on_device: bool = True) -> None:
        self.device = device
        self.spec = spec
        self.on_device = keep_on_device
        self.images = split.images.to(device) if keep_on_device else split.images
        self.targets = split.targets.to(device)
        self.biases = split.biases.to(device) if split.biases is not None else None
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

    def inputs(self, index: torch.Tensor, augment: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.on_device:
            images = self.images[index]
        else:
            images = self.images[index.cpu()].to(self.device, non_blocking=True)
        if augment:
            if self.spec.crop_padding:
                images = random_crop(images, self.spec.crop_padding, generator)
            if self.spec.horizontal_flip:
                images = random_flip(images, generator)
        return images.float() * self._mul + self._add
