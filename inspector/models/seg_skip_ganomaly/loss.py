"""The segmentation head's loss: BCE + soft Dice (the generator and discriminator train with
Skip-GANomaly's losses, ``components.skip_core`` and ``components.adversarial``)."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def segmentation_loss(logits: Tensor, mask: Tensor) -> Tensor:
    """Pixel BCE plus batch soft Dice: BCE alone drowns the few defect pixels in good ones
    (a crack is ~1 % of an image), Dice alone is unstable on the many batches' clean images."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), mask)
    prob = logits.float().sigmoid()
    dice = 1 - (2 * (prob * mask).sum() + 1) / (prob.sum() + mask.sum() + 1)
    return bce + dice
