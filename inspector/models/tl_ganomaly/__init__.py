"""TL-GANomaly (seed 003): GANomaly with an ImageNet ResNet-18 first encoder (transfer learning)."""

from inspector.models.tl_ganomaly.model import TLGanomaly as Model

__all__ = ["Model"]
