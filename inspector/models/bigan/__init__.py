"""BiGAN / ALI with a Wasserstein critic ("GANspection", seed 002)."""

from inspector.models.bigan.model import BiGan as Model

__all__ = ["Model"]
