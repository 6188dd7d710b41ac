"""PatchCore (Roth et al., CVPR 2022) on the ImageNet MobileNetV2 trunk the app ships."""

from inspector.models.patchcore.model import PatchCore as Model

__all__ = ["Model"]
