"""Skip-GANomaly losses: adversarial (feature matching), contextual (L1) and latent (L2)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def generator_loss(
    real_features: Tensor,
    fake_features: Tensor,
    x: Tensor,
    x_hat: Tensor,
    w_adv: float,
    w_con: float,
    w_lat: float,
    pixel_weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """Weighted sum of the three terms.

    adversarial: the batch-mean discriminator features of x̂ match those of x (feature matching,
    Salimans et al. 2016) — a distribution-level signal; latent: the same features matched image
    by image — x̂ must look like *its* x to the discriminator. ``pixel_weight`` (B, 1, H, W)
    weights the L1 term (the inpainting variant weights masked pixels more).
    """
    real_features = real_features.detach()
    adv = F.mse_loss(fake_features.mean(dim=0), real_features.mean(dim=0))
    lat = F.mse_loss(fake_features, real_features)
    error = (x_hat - x).abs()
    if pixel_weight is None:
        con = error.mean()
    else:
        con = (error * pixel_weight).mean() / pixel_weight.mean()
    return {"g_adv": adv, "g_con": con, "g_lat": lat, "g_loss": w_adv * adv + w_con * con + w_lat * lat}


def discriminator_loss(real_logit: Tensor, fake_logit: Tensor) -> Tensor:
    """Real → 1, fake → 0 on logits (BCE-with-logits is safe under autocast)."""
    real = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
    fake = F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
    return 0.5 * (real + fake)
