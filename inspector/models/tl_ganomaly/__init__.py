"""TL-GANomaly (a master's thesis on patch-wise and transfer-learning GANomaly): GANomaly with an ImageNet ResNet-18 first encoder (transfer learning)."""

from inspector.models.tl_ganomaly.model import TLGanomaly as Model

__all__ = ["Model"]
