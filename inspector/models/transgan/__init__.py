"""TransGAN (Jiang, Chang & Wang, NeurIPS 2021) with an AnoGAN-style latent search (Schlegl et al., IPMI 2017)."""

from inspector.models.transgan.model import TransGan as Model

__all__ = ["Model"]
