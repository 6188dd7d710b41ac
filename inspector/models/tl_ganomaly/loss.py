"""TL-GANomaly trains with GANomaly's losses unchanged (adversarial feature matching,
contextual L1, encoder L2; BCE for the discriminator): only the first encoder differs."""

from inspector.models.ganomaly.loss import discriminator_loss, generator_loss

__all__ = ["discriminator_loss", "generator_loss"]
