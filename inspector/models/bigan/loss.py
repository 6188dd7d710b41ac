"""BiGAN losses with a Wasserstein critic: critic loss, gradient penalty, generator/encoder loss."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def critic_loss(real_value: Tensor, fake_value: Tensor) -> Tensor:
    """Wasserstein critic loss: real pairs (x, E(x)) score high, generated pairs (G(z), z) low."""
    return fake_value.mean() - real_value.mean()


def gradient_penalty(critic: nn.Module, x_real: Tensor, z_real: Tensor, x_fake: Tensor, z_fake: Tensor) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017) on pairs: one ε per sample interpolates image and latent alike,
    and the norm is taken over the gradient of the whole pair. Computed in float32 (no autocast)."""
    eps = torch.rand(x_real.shape[0], 1, device=x_real.device)
    x = (eps[:, :, None, None] * x_real + (1 - eps[:, :, None, None]) * x_fake).float().requires_grad_(True)
    z = (eps * z_real + (1 - eps) * z_fake).float().requires_grad_(True)
    value, _ = critic(x, z)
    grad_x, grad_z = torch.autograd.grad(value.sum(), (x, z), create_graph=True)
    norm = torch.cat([grad_x.flatten(1), grad_z], dim=1).norm(2, dim=1)
    return (norm - 1).pow(2).mean()


def generator_loss(
    real_value: Tensor,
    fake_value: Tensor,
    real_features: Tensor,
    fake_features: Tensor,
    x: Tensor,
    x_rec: Tensor,
    w_adv: float,
    w_fm: float,
    w_rec: float,
) -> dict[str, Tensor]:
    """Loss of the generator and encoder together (they play against the critic as one).

    adv: the negated critic loss (E wants its pairs to look generated, G the reverse);
    fm: GANspection's L2 between the critic's features of real and generated pairs; real and
    generated pairs are unpaired samples, so — as in Salimans et al.'s feature matching — the
    batch means are matched;
    rec: L1 between x and G(E(x)), which BiGAN training alone does not make small.
    """
    adv = real_value.mean() - fake_value.mean()
    fm = F.mse_loss(fake_features.mean(0), real_features.mean(0))
    rec = F.l1_loss(x_rec, x)
    return {"ge_adv": adv, "ge_fm": fm, "ge_rec": rec, "ge_loss": w_adv * adv + w_fm * fm + w_rec * rec}
