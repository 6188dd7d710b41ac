"""TL-GANomaly networks: GANomaly whose first encoder is an ImageNet ResNet-18 (transfer learning).

x → z = E_TL(x) (ResNet-18 trunk + a conv to the latent) → x̂ = DCGAN decoder(z) → ẑ = E(x̂)
(a DCGAN encoder from scratch, as in the seed's code), with GANomaly's discriminator.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from inspector.models.dcgan import DCDecoder, DCEncoder
from inspector.models.ganomaly.torch_model import Discriminator
from inspector.models.resnet import ResNet18, feature_size, load_resnet18_weights

__all__ = ["Discriminator", "TLEncoder", "TLGenerator", "find_pretrained", "init_backbone"]

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TLEncoder(nn.Module):
    """Image in [-1, 1] → latent (nz, 1, 1) through ResNet-18's layer4 and a conv over its whole map.

    Gray images are repeated to 3 channels (the same as summing conv1's weights over RGB, but
    conv1 keeps torchvision's shape so a checkpoint loads unchanged); then ImageNet normalisation.
    """

    def __init__(self, image_size: int, nz: int, freeze: bool = False) -> None:
        super().__init__()
        self.backbone = ResNet18(num_classes=None)
        side = feature_size(image_size)
        self.final = nn.Conv2d(ResNet18.feature_channels, nz, side, 1, 0, bias=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.frozen = freeze
        if freeze:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> "TLEncoder":
        super().train(mode)
        if self.frozen:  # a frozen backbone keeps its ImageNet BatchNorm statistics too
            self.backbone.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = ((x + 1) * 0.5 - self.mean) / self.std
        return self.final(self.backbone.features(x))


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


def find_pretrained(explicit: str = "") -> Path | None:
    """The ResNet-18 weights to start from: the named file, else torchvision's cache, else None.

    The cache is ``torch.hub.get_dir()/checkpoints`` ($TORCH_HOME/hub, default ~/.cache/torch/hub),
    where torchvision keeps ``resnet18-f37072fd.pth``. Nothing is ever downloaded.
    """
    if explicit:
        return Path(explicit).expanduser()
    found = sorted((Path(torch.hub.get_dir()) / "checkpoints").glob("resnet18-*.pth"))
    return found[0] if found else None


def init_backbone(backbone: ResNet18, use_pretrained: bool, explicit_path: str = "") -> str:
    """Load ImageNet weights when there are some (a named file must load); say what happened.

    Returns the ``pretrained_source`` recorded in the model: ``imagenet:<file>`` or ``scratch: <why>``.
    """
    if not use_pretrained:
        log.info("TL-GANomaly: ResNet-18 encoder trained from scratch (pretrained=False)")
        return "scratch: pretrained=False"
    path = find_pretrained(explicit_path)
    if path is None:
        where = Path(torch.hub.get_dir()) / "checkpoints"
        message = (
            f"TL-GANomaly: no ImageNet ResNet-18 weights found (no resnet18-*.pth in {where}, no pretrained_path); "
            "the encoder is trained from SCRATCH, which is no transfer learning"
        )
        warnings.warn(message, stacklevel=2)
        return f"scratch: no resnet18-*.pth in {where}"
    load_resnet18_weights(backbone, path)  # a named or found file that does not load is an error, not a fallback
    log.info("TL-GANomaly: ResNet-18 encoder initialised from ImageNet weights %s", path)
    return f"imagenet:{path}"
