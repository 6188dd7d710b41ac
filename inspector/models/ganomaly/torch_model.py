"""GANomaly networks (Akcay et al., ACCV 2018): encoder–decoder–encoder generator and a discriminator."""

from __future__ import annotations

from torch import Tensor, nn

from inspector.models.dcgan import DCDecoder, DCEncoder


class Generator(nn.Module):
    """x → z = G_E(x) → x̂ = G_D(z) → ẑ = E(x̂). Anomalies make z and ẑ disagree."""

    def __init__(self, image_size: int, channels: int, nz: int, width: int, extra_layers: int = 0) -> None:
        super().__init__()
        self.encoder1 = DCEncoder(image_size, channels, nz, width, extra_layers)
        self.decoder = DCDecoder(image_size, channels, nz, width, extra_layers)
        self.encoder2 = DCEncoder(image_size, channels, nz, width, extra_layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z = self.encoder1(x)
        x_hat = self.decoder(z)
        z_hat = self.encoder2(x_hat)
        return x_hat, z, z_hat


class Discriminator(nn.Module):
    """DCGAN discriminator; returns (logit, features) — features drive the adversarial (feature-matching) loss."""

    def __init__(self, image_size: int, channels: int, width: int, extra_layers: int = 0) -> None:
        super().__init__()
        encoder = DCEncoder(image_size, channels, 1, width, extra_layers)
        self.features = encoder.features
        self.classifier = encoder.final

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.features(x)
        return self.classifier(features).flatten(), features
