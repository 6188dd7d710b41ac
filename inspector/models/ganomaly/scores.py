"""Score terms of GANomaly: the paper's latent distance and the residual-based terms we added.

Every term gives an image score (B,) and, where it has one, a pixel map (B, H, W) at the input
size; higher means more anomalous. Terms on different scales are put on one scale by their mean
over held-out good images (``Ganomaly.calibrate``), never by statistics of a test set.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from inspector.models.base import gaussian_blur


def latent_distance(z: Tensor, z_hat: Tensor) -> Tensor:
    """The paper's score: mean squared distance between the two latent codes."""
    return (z - z_hat).pow(2).flatten(1).mean(dim=1)



def leading_blocks(features: nn.Sequential, x: Tensor, n_blocks: int) -> list[Tensor]:
    """Outputs of the first ``n_blocks`` conv blocks of a DCGAN encoder (each ends in a LeakyReLU)."""
    outputs: list[Tensor] = []
    for layer in features:
        x = layer(x)
        if isinstance(layer, nn.LeakyReLU):
            outputs.append(x)
            if len(outputs) == n_blocks:
                break
    return outputs


def feature_distance_map(features: nn.Sequential, x: Tensor, x_hat: Tensor, n_blocks: int, size: tuple[int, int]) -> Tensor:
    """Residual in a learned feature space: per-location squared distance between the features of
    x and x̂ (mean over channels), lightly smoothed, upsampled to the input size and averaged over
    the first ``n_blocks`` blocks. Shape (B, H, W)."""
    # one pass for both (eval-mode BatchNorm treats samples independently, so this changes nothing)
    both = leading_blocks(features, torch.cat([x, x_hat.to(x.dtype)], dim=0), n_blocks)
    total = None
    for f in both:
        fx, fh = f.chunk(2, dim=0)
        d = (fx - fh).pow(2).mean(dim=1, keepdim=True)
        d = F.interpolate(gaussian_blur(d, 1.0), size=size, mode="bilinear", align_corners=False)
        total = d if total is None else total + d
    return (total / len(both)).squeeze(1)

