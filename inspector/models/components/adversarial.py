"""Helpers of generator/discriminator training shared by the GAN methods."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from inspector.models.components.dcgan import weights_init

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
