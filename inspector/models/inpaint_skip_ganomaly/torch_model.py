"""Networks of the inpainting variant: Skip-GANomaly's own, the generator fed the mask as an extra channel."""

from __future__ import annotations

import torch
from torch import Tensor

from inspector.models.components.skip_core import UNetGenerator


def completion_generator(image_size: int, channels: int, width: int, max_mult: int) -> UNetGenerator:
    """The Skip-GANomaly U-Net with one more input channel (the mask) and the image's channels out."""
    return UNetGenerator(image_size, channels + 1, channels, width, max_mult)


def completion_input(x: Tensor, mask: Tensor) -> Tensor:
    """Hidden pixels (``mask`` (B, 1, H, W) = 1) set to 0, mid-grey in [-1, 1]; the mask appended so the
    network knows which pixels to invent (a constant fill alone is ambiguous with a grey part)."""
    return torch.cat([x * (1 - mask), mask], dim=1)
