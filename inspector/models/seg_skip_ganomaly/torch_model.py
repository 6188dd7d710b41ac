"""Networks: Skip-GANomaly's generator and discriminator, and a small U-Net that segments defects."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from inspector.models.skip_ganomaly.torch_model import Discriminator, UNetGenerator

__all__ = ["Discriminator", "SegmentationHead", "UNetGenerator"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class SegmentationHead(nn.Module):
    """A four-level U-Net (3×3 convs, full resolution at the top, so one-pixel cracks survive)
    returning per-pixel defect logits (B, 1, H, W). Needs H and W divisible by 8."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        w = width
        self.down = nn.ModuleList([_block(in_channels, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 8 * w)])
        self.up = nn.ModuleList([_block(12 * w, 4 * w), _block(6 * w, 2 * w), _block(3 * w, w)])
        self.out = nn.Conv2d(w, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skips.pop()], dim=1))
        return self.out(x)
