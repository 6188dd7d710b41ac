"""TransGAN losses: the non-saturating GAN loss, and the encoder's reconstruction losses.

Non-saturating logistic loss (Goodfellow et al. 2014) rather than WGAN-GP: the gradient
penalty's double backward through attention roughly doubles the cost of a discriminator step,
which matters on a CPU; softplus keeps the loss safe under autocast.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def discriminator_loss(real_logit: Tensor, fake_logit: Tensor) -> Tensor:
    return F.softplus(-real_logit).mean() + F.softplus(fake_logit).mean()


def generator_loss(fake_logit: Tensor) -> Tensor:
    """Non-saturating: maximise log D(G(z)) instead of minimising log(1 − D(G(z)))."""
    return F.softplus(-fake_logit).mean()


def encoder_losses(x: Tensor, x_rec: Tensor, z: Tensor, z_cycle: Tensor) -> dict[str, Tensor]:
    """izi: L1 between x and G(E(x)); ziz: L2 between z and E(G(z)) (f-AnoGAN's two encoder losses)."""
    return {"rec": F.l1_loss(x_rec, x), "ziz": F.mse_loss(z_cycle, z)}


def search_loss(x: Tensor, x_hat: Tensor, features: Tensor, hat_features: Tensor, weight: float) -> Tensor:
    """Per-image AnoGAN objective: L1 residual + weight · L1 distance of discriminator features."""
    residual = (x - x_hat).abs().flatten(1).mean(dim=1)
    feature = (features - hat_features).abs().flatten(1).mean(dim=1)
    return residual + weight * feature
