"""Inpainting loss: Skip-GANomaly's (``components.skip_core.generator_loss``), with the L1 term
weighted towards the hidden pixels by these weights."""

from __future__ import annotations

from torch import Tensor


def hole_weights(mask: Tensor, hole_weight: float) -> Tensor:
    """Per-pixel L1 weights: 1 where the generator saw the pixel, ``hole_weight`` where it had to invent it.

    The visible pixels still count, so the output stays a whole image the discriminator can judge.
    """
    return 1 + (hole_weight - 1) * mask
