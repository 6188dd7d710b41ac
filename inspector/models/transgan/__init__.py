"""TransGAN with an AnoGAN-style latent search (seed 004)."""

from inspector.models.transgan.model import TransGan as Model

__all__ = ["Model"]
