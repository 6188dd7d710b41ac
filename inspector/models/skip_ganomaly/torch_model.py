"""Skip-GANomaly networks (Akçay, Atapour-Abarghouei, Breckon; IJCNN 2019).

The generator is a U-Net (as pix2pix, which the reference code uses): 4×4 stride-2
convolutions down to 1×1, transposed convolutions back up, and each encoder level
concatenated onto the decoder level of the same size, so fine detail need not pass
through the bottleneck. The discriminator is the DCGAN one of GANomaly; its last conv
block's features feed the adversarial and latent losses and the latent score.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from inspector.models.dcgan import DCEncoder


class UNetGenerator(nn.Module):
    """x (in_channels, S, S) → x̂ (out_channels, S, S) in [-1, 1] through a 1×1 bottleneck with skips.

    ``in_channels`` may differ from ``out_channels`` (the inpainting variant adds a mask channel).
    Channels double per level from ``width`` up to ``width · max_mult``.
    """

    def __init__(self, image_size: int, in_channels: int, out_channels: int, width: int, max_mult: int = 8) -> None:
        super().__init__()
        depth = image_size.bit_length() - 1  # 64 px → 6 levels: 32, 16, 8, 4, 2, 1
        chans = [width * min(2**i, max_mult) for i in range(depth)]
        downs: list[nn.Module] = [nn.Conv2d(in_channels, chans[0], 4, 2, 1, bias=False)]
        for i in range(1, depth):
            innermost = i == depth - 1  # no norm on a 1×1 map, as pix2pix
            layers = [nn.LeakyReLU(0.2, True), nn.Conv2d(chans[i - 1], chans[i], 4, 2, 1, bias=False)]
            downs.append(nn.Sequential(*layers) if innermost else nn.Sequential(*layers, nn.BatchNorm2d(chans[i])))
        ups: list[nn.Module] = []
        for i in range(depth - 1, 0, -1):  # decoder level i produces the size of encoder level i-1
            c_in = chans[i] if i == depth - 1 else 2 * chans[i]
            ups.append(nn.Sequential(nn.ReLU(True), nn.ConvTranspose2d(c_in, chans[i - 1], 4, 2, 1, bias=False), nn.BatchNorm2d(chans[i - 1])))
        ups.append(nn.Sequential(nn.ReLU(True), nn.ConvTranspose2d(2 * chans[0], out_channels, 4, 2, 1), nn.Tanh()))
        self.downs = nn.ModuleList(downs)
        self.ups = nn.ModuleList(ups)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        x = self.ups[0](skips.pop())
        for up in self.ups[1:]:
            x = up(torch.cat([x, skips.pop()], dim=1))
        return x


class Discriminator(nn.Module):
    """DCGAN discriminator; returns (logit, features of its last conv block)."""

    def __init__(self, image_size: int, channels: int, width: int) -> None:
        super().__init__()
        encoder = DCEncoder(image_size, channels, 1, width)
        self.features = encoder.features
        self.classifier = encoder.final

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.features(x)
        return self.classifier(features).flatten(), features
