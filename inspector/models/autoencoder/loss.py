"""Autoencoder loss: L1, optionally plus a structural (SSIM) term."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def ssim(x: Tensor, y: Tensor, window: int = 7) -> Tensor:
    """Mean structural similarity on [-1, 1] images with a box window (per channel)."""
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2  # the usual constants for a value range of 2
    pad = window // 2

    def mean(t: Tensor) -> Tensor:
        return F.avg_pool2d(t, window, 1, pad, count_include_pad=False)

    mx, my = mean(x), mean(y)
    vx, vy, cov = mean(x * x) - mx**2, mean(y * y) - my**2, mean(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean()


def reconstruction_loss(x: Tensor, x_hat: Tensor, w_ssim: float) -> dict[str, Tensor]:
    l1 = F.l1_loss(x_hat, x)
    if w_ssim <= 0:
        return {"l1": l1, "loss": l1}
    structure = 1 - ssim(x.float(), x_hat.float())
    return {"l1": l1, "ssim": structure, "loss": l1 + w_ssim * structure}
