"""TL-GANomaly (a master's thesis on patch-wise and transfer-learning GANomaly) as an
``AnomalyModel``: the patch-wise training and scoring (``components.patchwise``) with an ImageNet
backbone (ResNet-18 or MobileNetV2) as the first encoder, initialised from ImageNet weights when
they are on this machine.

By default it works on the whole image (``patch_size=0``); a ``patch_size`` gives the thesis's
combination of transfer learning and patch-wise training (random crops, sliding window).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from inspector.models.components.dcgan import DCDiscriminator, weights_init
from inspector.models.components.patchwise import PatchwiseConfig, PatchwiseGanomaly
from inspector.models.tl_ganomaly.torch_model import BACKBONES, TLGenerator, init_backbone


@dataclass
class TLGanomalyConfig(PatchwiseConfig):
    image_size: int = 64
    patch_size: int = 0  # 0 = whole image; e.g. 32 = patch-wise TL-GANomaly
    backbone: str = "resnet18"  # the thesis's; or "mobilenet_v2" (its ImageNet weights come with ./dev)
    pretrained: bool = True  # start from ImageNet weights when they are found (never downloaded)
    pretrained_path: str = ""  # a torchvision .pth of the backbone; empty = torchvision's cache, then a package
    # what the encoder started from, filled in by the model: "imagenet:<file>" or "scratch: <why>".
    # A saved model carries it, and rebuilding from a saved config does not look for weights again.
    pretrained_source: str = ""
    freeze_backbone: bool = False  # keep the backbone (and its BatchNorm statistics) as loaded
    map_mode: str = "residual"
    score_reduce: str = "topk"

    def validate(self) -> None:
        super().validate()
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")


class TLGanomaly(PatchwiseGanomaly):
    name = "tl-ganomaly"
    description = (
        "TL-GANomaly (after a master's thesis on transfer-learning GANomaly): "
        "GANomaly with an ImageNet encoder (ResNet-18, MobileNetV2), optionally patch-wise"
    )
    Config = TLGanomalyConfig

    def build_networks(self, c: TLGanomalyConfig) -> tuple[nn.Module, nn.Module]:
        generator = TLGenerator(c.patch, c.channels, c.nz, c.width, c.extra_layers, c.freeze_backbone, c.backbone)
        discriminator = DCDiscriminator(c.patch, c.channels, c.width, c.extra_layers)
        for part in (generator.encoder1.final, generator.decoder, generator.encoder2, discriminator):
            part.apply(weights_init)  # DCGAN init everywhere but the backbone (its own init, or ImageNet)
        if not c.pretrained_source:
            c.pretrained_source = init_backbone(generator.encoder1.backbone, c.backbone, c.pretrained, c.pretrained_path)
        return generator, discriminator

    @property
    def pretrained_source(self) -> str:
        """``imagenet:<file>`` or ``scratch: <why>`` — also in the model file's config."""
        return self.config.pretrained_source
