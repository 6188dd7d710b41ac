"""GANomaly's generator and generator loss (Akçay, Atapour-Abarghouei & Breckon, ACCV 2018),
shared by GANomaly and its patch-wise and transfer-learning variants.

The discriminator is ``dcgan.DCDiscriminator``, its loss ``adversarial.discriminator_loss``.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from inspector.models.components.dcgan import DCDecoder, DCEncoder


class GanomalyGenerator(nn.Module):
    """x → z = G_E(x) → x̂ = G_D(z) → ẑ = E(x̂). Anomalies make z and ẑ disagree."""

    def __init__(self, image_size: int, channels: int, nz: int, width: int, extra_layers: int = 0, encoder1: nn.Module | None = None) -> None:
        """``encoder1`` replaces the first DCGAN encoder (transfer learning: an ImageNet backbone)."""
        super().__init__()
        self.encoder1 = encoder1 if encoder1 is not None else DCEncoder(image_size, channels, nz, width, extra_layers)
        self.decoder = DCDecoder(image_size, channels, nz, width, extra_layers)
        self.encoder2 = DCEncoder(image_size, channels, nz, width, extra_layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z = self.encoder1(x)
        x_hat = self.decoder(z)
        z_hat = self.encoder2(x_hat)
        return x_hat, z, z_hat


def generator_loss(
    real_features: Tensor,
    fake_features: Tensor,
    x: Tensor,
    x_hat: Tensor,
    z: Tensor,
    z_hat: Tensor,
    w_adv: float,
    w_con: float,
    w_enc: float,
) -> dict[str, Tensor]:
    """GANomaly's three terms: adversarial (feature matching, L2), contextual (L1), encoder (L2)."""
    adv = F.mse_loss(fake_features, real_features.detach())
    con = F.l1_loss(x_hat, x)
    enc = F.mse_loss(z_hat, z)
    return {"g_adv": adv, "g_con": con, "g_enc": enc, "g_loss": w_adv * adv + w_con * con + w_enc * enc}
