"""PaDiM (Defard et al., ICPR 2020 workshops) on the ImageNet MobileNetV2 trunk the app ships."""

from inspector.models.padim.model import Padim as Model

__all__ = ["Model"]
