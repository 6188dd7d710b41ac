"""TL-GANomaly networks: GANomaly whose first encoder is an ImageNet backbone (transfer learning):
ResNet-18, as the thesis on patch-wise and transfer-learning GANomaly, or MobileNetV2.

x → z = E_TL(x) (the backbone's trunk + a conv to the latent) → x̂ = DCGAN decoder(z) → ẑ = E(x̂)
(a DCGAN encoder from scratch, as in the thesis's code); the discriminator is GANomaly's
(``components.dcgan.DCDiscriminator``).
"""

from __future__ import annotations

import logging

from torch import Tensor, nn

from inspector.models.components.ganomaly_core import GanomalyGenerator
from inspector.models.components.mobilenet import MobileNetV2
from inspector.models.components.pretrained import ImageNetInput, load_weights, pretrained_source
from inspector.models.components.resnet import ResNet18, feature_size

# name → (builder of the trunk, its name in words, keys of a torchvision file the trunk does not have)
BACKBONES = {
    "resnet18": (lambda: ResNet18(num_classes=None), "ResNet-18", ("fc.",)),
    "mobilenet_v2": (MobileNetV2, "MobileNetV2", ("classifier.",)),
}

__all__ = ["TLEncoder", "TLGenerator", "init_backbone"]

log = logging.getLogger(__name__)


class TLEncoder(nn.Module):
    """Image in [-1, 1] → latent (nz, 1, 1) through the backbone's stride-32 features and a conv over
    their whole map (input as ImageNet's: ``ImageNetInput``)."""

    def __init__(self, image_size: int, nz: int, freeze: bool = False, backbone: str = "resnet18") -> None:
        super().__init__()
        self.backbone = BACKBONES[backbone][0]()
        side = feature_size(image_size)  # both backbones halve the image five times
        self.final = nn.Conv2d(self.backbone.feature_channels, nz, side, 1, 0, bias=False)
        self.imagenet_input = ImageNetInput()
        self.frozen = freeze
        if freeze:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> "TLEncoder":
        super().train(mode)
        if self.frozen:  # a frozen backbone keeps its ImageNet BatchNorm statistics too
            self.backbone.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.final(self.backbone.features(self.imagenet_input(x)))


class TLGenerator(GanomalyGenerator):
    """GANomaly's encoder–decoder–encoder with the transfer-learning encoder first."""

    def __init__(
        self, image_size: int, channels: int, nz: int, width: int, extra_layers: int = 0, freeze: bool = False, backbone: str = "resnet18"
    ) -> None:
        super().__init__(image_size, channels, nz, width, extra_layers, encoder1=TLEncoder(image_size, nz, freeze, backbone))


def init_backbone(backbone: nn.Module, name: str, use_pretrained: bool, explicit_path: str = "") -> str:
    """Load ImageNet weights into the ``name`` backbone when there are some (a named file must
    load); say what happened. Returns the ``pretrained_source`` recorded in the model:
    ``imagenet:<file>`` or ``scratch: <why>``.
    """
    label, ignore = BACKBONES[name][1:]
    fallback = "the encoder is trained from SCRATCH, which is no transfer learning"
    source = pretrained_source(name, label, use_pretrained, explicit_path, "TL-GANomaly", fallback)
    if source.startswith("imagenet:"):  # a named or found file that does not load is an error, not a fallback
        load_weights(backbone, source.removeprefix("imagenet:"), label, ignore)
        log.info("TL-GANomaly: %s encoder initialised from ImageNet weights %s", label, source)
    return source
