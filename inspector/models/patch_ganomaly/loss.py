"""Patch-GANomaly trains with GANomaly's losses unchanged (adversarial feature matching,
contextual L1, encoder L2; BCE for the discriminator), applied to patches instead of images."""

from inspector.models.ganomaly.loss import discriminator_loss, generator_loss

__all__ = ["discriminator_loss", "generator_loss"]
