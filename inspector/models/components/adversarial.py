"""Helpers of generator/discriminator training shared by the GAN methods."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from inspector.models.components.dcgan import weights_init

if TYPE_CHECKING:
    from inspector.models.base import StepContext

#: a discriminator loss below this means it has won: it tells real from fake perfectly and the
#: generator gets no useful gradient from it any more
WON_BELOW = 1e-5


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """No weight gradients for ``modules`` inside the block; their inputs still get theirs
    (a generator's update needs gradients *through* the discriminator, not *of* it)."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def discriminator_loss(real_logit: Tensor, fake_logit: Tensor) -> Tensor:
    """Real → 1, fake → 0 on logits, the GANomaly family's (BCE-with-logits is safe under autocast)."""
    real = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
    fake = F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
    return 0.5 * (real + fake)


def reset_if_won(discriminator: nn.Module, d_loss: float) -> None:
    """The GANomaly reference code's remedy for a discriminator that has won: initialise it afresh."""
    if d_loss < WON_BELOW:
        discriminator.apply(weights_init)


def discriminator_step(discriminator: nn.Module, real: Tensor, fake: Tensor, optimizer: torch.optim.Optimizer, ctx: StepContext) -> float:
    """One update of a (logit, features) discriminator on real images and the generator's output
    (detached: this step must not train the generator); it is reset when it has won. The loss."""
    with ctx.autocast():
        real_logit, _ = discriminator(real)
        fake_logit, _ = discriminator(fake.detach())
        d_loss = discriminator_loss(real_logit, fake_logit)
    ctx.optimise(d_loss, optimizer)
    value = d_loss.item()
    reset_if_won(discriminator, value)
    return value


@torch.no_grad()
def sample_images(model: nn.Module, n: int, rng: torch.Generator | None = None) -> Tensor:
    """``n`` new images G(z), z ~ N(0, I), in [-1, 1], from a model with a ``generator`` that maps
    ``config.nz``-long latents (BiGAN, TransGAN); in eval mode, and repeatable with ``rng``."""
    z = torch.randn(n, model.config.nz, generator=rng).to(model.score_scale.device)
    was_training = model.training
    model.eval()
    try:
        return model.generator(z)
    finally:
        model.train(was_training)
