"""An image score of two terms on different scales, each divided by its mean on held-out good images.

score = w · first / scale[0] + (1 − w) · second / scale[1]: the first term is the one ``w`` weighs
(the reconstruction residual, in every method that uses it). The scales come from good images only
(``calibrated_scale`` in the method's ``calibrate``), never from a test set, so w weighs like with like.
A method keeps the scales in a buffer named ``score_scale`` (``register_score_scale``); model files
carry it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


def register_score_scale(model: nn.Module) -> None:
    """The buffer of the two terms' means, 1 until ``calibrate`` has seen good images."""
    model.register_buffer("score_scale", torch.ones(2))


def two_term_score(first: Tensor, second: Tensor, weight: float, scale: Tensor) -> Tensor:
    """w · first / scale[0] + (1 − w) · second / scale[1], per image (or per pixel of a map)."""
    return weight * first / scale[0] + (1 - weight) * second / scale[1]


def calibrated_scale(terms: Iterable[tuple[Tensor, Tensor]]) -> Tensor | None:
    """[mean of first, mean of second] over the (first, second) term batches of held-out good images,
    kept above 0; None when there were none (the scale then stays as it was)."""
    firsts, seconds = [], []
    for first, second in terms:
        firsts.append(first)
        seconds.append(second)
    if not firsts:
        return None
    return torch.stack([torch.cat(firsts).mean(), torch.cat(seconds).mean()]).clamp_min(1e-12)
