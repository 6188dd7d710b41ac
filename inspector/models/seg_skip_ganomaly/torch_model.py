"""The heads that segment defects (the generator and discriminator are Skip-GANomaly's,
``components.skip_core``): a small U-Net trained from scratch, or a decoder on a frozen ImageNet
MobileNetV2 (transfer learning)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from inspector.models.components.mobilenet import MobileNetV2
from inspector.models.components.pretrained import ImageNetInput

__all__ = ["ImageNetSegmentationHead", "SegmentationHead"]


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


class ImageNetSegmentationHead(nn.Module):
    """Defect logits (B, 1, H, W) from a frozen ImageNet MobileNetV2 trunk and a trained decoder.

    The trunk (blocks 0–13, strides 2 to 16) keeps its weights and BatchNorm statistics as loaded:
    features learnt from a million natural images carry what painted defects alone do not teach
    (ELPV image AUROC over six runs: 0.79–0.86; the U-Net head's: 0.74–0.83). The decoder climbs
    back with U-Net skips from strides 8, 4 and 2, and a last level reads the image itself at full
    resolution, so a one-pixel crack survives. ``width`` sets the decoder (4×, 3×, 2×, 1.5×, 1× channels).

    ``run`` also returns the trunk's features of blocks 3, 6 and 10 (strides 4, 8 and 16, 120
    channels) at stride 4: what a Gaussian of good parts' features scores (``feature_gaussian``).
    """

    FEATURE_BLOCKS = (3, 6, 10)
    FEATURE_CHANNELS = 24 + 32 + 64

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.imagenet_input = ImageNetInput()
        self.trunk = MobileNetV2().features[: MobileNetV2.STRIDE_TAPS[16] + 1]
        self.trunk.requires_grad_(False)
        self.taps = [MobileNetV2.STRIDE_TAPS[s] for s in (2, 4, 8)]
        c = MobileNetV2.TAP_CHANNELS
        w = width
        widths = [4 * w, 3 * w, 2 * w, w * 3 // 2, w]
        self.full = _block(in_channels, w)
        self.bottom = _block(c[16], widths[0])
        skips = [c[8], c[4], c[2], w]
        self.up = nn.ModuleList([_block(widths[i] + skips[i], widths[i + 1]) for i in range(4)])
        self.out = nn.Conv2d(w, 1, 1)

    def train(self, mode: bool = True) -> "ImageNetSegmentationHead":
        super().train(mode)
        self.trunk.eval()  # frozen: ImageNet's BatchNorm statistics, not the batch's
        return self

    def run(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(defect logits (B, 1, H, W), trunk features (B, 120, H/4, W/4)) in one pass of the trunk."""
        h, kept = self._trunk(x, len(self.trunk) - 1)
        return self._decode(x, h, kept), _at_stride_4([kept[i] for i in self.FEATURE_BLOCKS])

    def forward(self, x: Tensor) -> Tensor:
        return self._decode(x, *self._trunk(x, len(self.trunk) - 1))

    def features(self, x: Tensor) -> Tensor:
        """The trunk features alone, (B, 120, H/4, W/4): no decoder, and the trunk only up to block 10."""
        _, kept = self._trunk(x, self.FEATURE_BLOCKS[-1])
        return _at_stride_4([kept[i] for i in self.FEATURE_BLOCKS])

    def _trunk(self, x: Tensor, last: int) -> tuple[Tensor, dict[int, Tensor]]:
        """The trunk's blocks 0 to ``last``: (the last output, the outputs of the skip and feature blocks)."""
        h, kept = self.imagenet_input(x), {}
        for i, block in enumerate(self.trunk[: last + 1]):
            h = block(h)
            if i in self.taps or i in self.FEATURE_BLOCKS:
                kept[i] = h
        return h, kept

    def _decode(self, x: Tensor, h: Tensor, kept: dict[int, Tensor]) -> Tensor:
        skips = [self.full(x)] + [kept[i] for i in self.taps]
        y = self.bottom(h)
        for block in self.up:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        return self.out(y)


def _at_stride_4(features: list[Tensor]) -> Tensor:
    """Taps of strides 4, 8 and 16 upsampled to stride 4, stacked, and averaged over 3 × 3
    neighbours (PaDiM's stacking, PatchCore's neighbourhood: the recipe measured on ELPV)."""
    size = features[0].shape[-2:]
    stacked = torch.cat([features[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in features[1:]], dim=1)
    return F.avg_pool2d(stacked, 3, stride=1, padding=1)
