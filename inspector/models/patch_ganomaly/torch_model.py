"""Patch-GANomaly networks and patch geometry.

The networks are GANomaly's own (encoder–decoder–encoder generator, DCGAN discriminator),
imported rather than copied, built at the *patch* size. What is new here is the geometry:
random crops for training, and a sliding window that cuts an image of any size into
overlapping patches and stitches per-patch results back into full-resolution maps.
"""

from __future__ import annotations

import torch
from torch import Tensor

from inspector.models.ganomaly.torch_model import Discriminator, Generator

__all__ = ["Discriminator", "Generator", "random_patches", "window_starts", "extract_windows", "stitch"]


def random_patches(batch: Tensor, size: int, per_image: int, generator: torch.Generator | None = None) -> Tensor:
    """``per_image`` random ``size``×``size`` crops of every image: (B·per_image, C, size, size)."""
    b, c, h, w = batch.shape
    if size >= h and size >= w:
        return batch
    n = b * per_image
    ys = torch.randint(0, h - size + 1, (n,), generator=generator)
    xs = torch.randint(0, w - size + 1, (n,), generator=generator)
    offsets = torch.arange(size)
    rows = (ys[:, None] + offsets).to(batch.device)  # (n, size)
    cols = (xs[:, None] + offsets).to(batch.device)
    images = torch.arange(b, device=batch.device).repeat_interleave(per_image)
    # advanced indexing → (n, size, size, C); channels back to dim 1
    crops = batch.permute(0, 2, 3, 1)[images[:, None, None], rows[:, :, None], cols[:, None, :]]
    return crops.permute(0, 3, 1, 2).contiguous()


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Window origins along one axis: every ``stride`` pixels, plus one flush with the far edge."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def extract_windows(batch: Tensor, size: int, stride: int) -> tuple[Tensor, list[tuple[int, int]]]:
    """All sliding windows of every image: (B, L, C, size, size) and the L (y, x) origins."""
    h, w = batch.shape[-2:]
    origins = [(y, x) for y in window_starts(h, size, stride) for x in window_starts(w, size, stride)]
    windows = torch.stack([batch[:, :, y : y + size, x : x + size] for y, x in origins], dim=1)
    return windows, origins


def stitch(values: Tensor, origins: list[tuple[int, int]], height: int, width: int) -> Tensor:
    """Average per-window maps (B, L, C, s, s) over their overlaps into (B, C, height, width)."""
    b, _, c, s, _ = values.shape
    total = values.new_zeros(b, c, height, width)
    count = values.new_zeros(1, 1, height, width)
    for i, (y, x) in enumerate(origins):
        total[:, :, y : y + s, x : x + s] += values[:, i]
        count[:, :, y : y + s, x : x + s] += 1
    return total / count
