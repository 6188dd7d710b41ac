"""GANomaly losses: adversarial (feature matching), contextual (L1) and encoder (L2)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def generator_loss(
    real_features: Tensor,
    fake_features: Tensor,
    x: Tensor,
    x_hat: Tensor,
    z: Tensor,
    z_hat: Tensor,
    w_adv: float,
    w_con: float,
    w_enc: float,
) -> dict[str, Tensor]:
    adv = F.mse_loss(fake_features, real_features.detach())
    con = F.l1_loss(x_hat, x)
    enc = F.mse_loss(z_hat, z)
    return {"g_adv": adv, "g_con": con, "g_enc": enc, "g_loss": w_adv * adv + w_con * con + w_enc * enc}


def discriminator_loss(real_logit: Tensor, fake_logit: Tensor) -> Tensor:
    """Standard GAN discriminator loss on logits (BCE-with-logits is safe under autocast)."""
    real = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
    fake = F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
    return 0.5 * (real + fake)
