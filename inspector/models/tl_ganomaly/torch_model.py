"""TL-GANomaly networks: GANomaly whose first encoder is an ImageNet ResNet-18 (transfer learning).

x → z = E_TL(x) (ResNet-18 trunk + a conv to the latent) → x̂ = DCGAN decoder(z) → ẑ = E(x̂)
(a DCGAN encoder from scratch, as in the seed's code), with GANomaly's discriminator.
"""

from __future__ import annotations

import logging
import warnings

from torch import Tensor, nn

from inspector.models.dcgan import DCDecoder, DCEncoder
from inspector.models.ganomaly.torch_model import Discriminator
from inspector.models.pretrained import ImageNetInput, find_weights, where_looked
from inspector.models.resnet import ResNet18, feature_size, load_resnet18_weights

__all__ = ["Discriminator", "TLEncoder", "TLGenerator", "init_backbone"]

log = logging.getLogger(__name__)


class TLEncoder(nn.Module):
    """Image in [-1, 1] → latent (nz, 1, 1) through ResNet-18's layer4 and a conv over its whole map
    (input as ImageNet's: ``ImageNetInput``)."""

    def __init__(self, image_size: int, nz: int, freeze: bool = False) -> None:
        super().__init__()
        self.backbone = ResNet18(num_classes=None)
        side = feature_size(image_size)
        self.final = nn.Conv2d(ResNet18.feature_channels, nz, side, 1, 0, bias=False)
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


class TLGenerator(nn.Module):
    """GANomaly's encoder–decoder–encoder with the transfer-learning encoder first."""

    def __init__(self, image_size: int, channels: int, nz: int, width: int, extra_layers: int = 0, freeze: bool = False) -> None:
        super().__init__()
        self.encoder1 = TLEncoder(image_size, nz, freeze)
        self.decoder = DCDecoder(image_size, channels, nz, width, extra_layers)
        self.encoder2 = DCEncoder(image_size, channels, nz, width, extra_layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z = self.encoder1(x)
        x_hat = self.decoder(z)
        z_hat = self.encoder2(x_hat)
        return x_hat, z, z_hat


def init_backbone(backbone: ResNet18, use_pretrained: bool, explicit_path: str = "") -> str:
    """Load ImageNet weights when there are some (a named file must load); say what happened.

    Returns the ``pretrained_source`` recorded in the model: ``imagenet:<file>`` or ``scratch: <why>``.
    """
    if not use_pretrained:
        log.info("TL-GANomaly: ResNet-18 encoder trained from scratch (pretrained=False)")
        return "scratch: pretrained=False"
    path = find_weights("resnet18", explicit_path)
    if path is None:
        where = where_looked("resnet18")
        message = (
            f"TL-GANomaly: no ImageNet ResNet-18 weights found ({where}, no pretrained_path); "
            "the encoder is trained from SCRATCH, which is no transfer learning"
        )
        warnings.warn(message, stacklevel=2)
        return f"scratch: {where}"
    load_resnet18_weights(backbone, path)  # a named or found file that does not load is an error, not a fallback
    log.info("TL-GANomaly: ResNet-18 encoder initialised from ImageNet weights %s", path)
    return f"imagenet:{path}"
