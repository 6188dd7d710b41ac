"""DCGAN pyramids shared by the GANomaly family, BiGAN and TransGAN (Radford et al. 2016).

Kept as in the GANomaly reference code: 4×4 convolutions with stride 2, BatchNorm,
LeakyReLU(0.2) going down and ReLU going up, a 4×4 "final" layer to/from the latent vector.
"""

from __future__ import annotations

from torch import Tensor, nn


class DCEncoder(nn.Module):
    """Image (C, S, S) → latent (nz, 1, 1); ``features`` returns the last 4×4 map before it."""

    def __init__(self, image_size: int, channels: int, nz: int, width: int, extra_layers: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(extra_layers):
            layers += [nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.2, inplace=True)]
        size, ch = image_size // 2, width
        while size > 4:
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, inplace=True)]
            ch, size = ch * 2, size // 2
        self.features = nn.Sequential(*layers)
        self.final = nn.Conv2d(ch, nz, 4, 1, 0, bias=False)
        self.feature_channels = ch

    def forward(self, x: Tensor) -> Tensor:
        return self.final(self.features(x))


class DCDecoder(nn.Module):
    """Latent (nz, 1, 1) → image (C, S, S) in [-1, 1]."""

    def __init__(self, image_size: int, channels: int, nz: int, width: int, extra_layers: int = 0) -> None:
        super().__init__()
        ch, size = width // 2, 4
        while size != image_size:
            ch, size = ch * 2, size * 2
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        size = 4
        while size < image_size // 2:
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch, size = ch // 2, size * 2
        for _ in range(extra_layers):
            layers += [nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class DCDiscriminator(nn.Module):
    """DCGAN discriminator of GANomaly and Skip-GANomaly; returns (logit, features of its last
    conv block): the features drive the adversarial (feature-matching) loss and the latent score."""

    def __init__(self, image_size: int, channels: int, width: int, extra_layers: int = 0) -> None:
        super().__init__()
        encoder = DCEncoder(image_size, channels, 1, width, extra_layers)
        self.features = encoder.features
        self.classifier = encoder.final

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.features(x)
        return self.classifier(features).flatten(), features


class LatentEncoder(nn.Module):
    """Image (C, S, S) → latent vector (nz,): BiGAN's encoder, and TransGAN's start of the latent search."""

    def __init__(self, image_size: int, channels: int, nz: int, width: int) -> None:
        super().__init__()
        self.net = DCEncoder(image_size, channels, nz, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)


def weights_init(module: nn.Module) -> None:
    """DCGAN initialisation (N(0, 0.02) convs, N(1, 0.02) norms), as the GANomaly papers use."""
    name = type(module).__name__
    if "Conv" in name and hasattr(module, "weight"):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif "BatchNorm" in name:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
