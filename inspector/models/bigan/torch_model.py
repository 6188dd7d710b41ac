"""BiGAN/ALI networks (Donahue et al., ICLR 2017; Dumoulin et al., ICLR 2017) with a WGAN-GP critic.

The encoder (``components.dcgan.LatentEncoder``) and generator are the shared DCGAN pyramids.
The critic judges (image, latent) pairs; it has no BatchNorm, because the gradient penalty is defined per sample and batch
statistics would couple the samples (Gulrajani et al. 2017 use layer norm, so do we).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from inspector.models.components.dcgan import DCDecoder


class Generator(nn.Module):
    """Latent (nz,) → image (C, S, S) in [-1, 1] (Tanh)."""

    def __init__(self, image_size: int, channels: int, nz: int, width: int) -> None:
        super().__init__()
        self.net = DCDecoder(image_size, channels, nz, width)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])


class Critic(nn.Module):
    """(image, latent) → (Wasserstein critic value (B,), joint features (B, hidden)).

    An image branch of strided convs with layer norm, a latent branch of linears, and a joint
    head; the joint hidden layer is the "feature representation" that GANspection matches between
    real and generated pairs. The anomaly score compares the image branch's feature maps
    (``image_features``) instead: x and G(E(x)) are scored with the same z, so the joint
    features mostly echo z (on ELPV they ranked defects at chance, AUROC 0.53).
    """

    def __init__(self, image_size: int, channels: int, nz: int, width: int, hidden: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        size, ch = image_size // 2, width
        while size > 4:
            # GroupNorm with one group = layer norm over (C, H, W) of each sample
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.GroupNorm(1, ch * 2), nn.LeakyReLU(0.2, inplace=True)]
            ch, size = ch * 2, size // 2
        self.image_branch = nn.Sequential(*layers, nn.Flatten())
        self.latent_branch = nn.Sequential(
            nn.Linear(nz, hidden), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2, inplace=True),
        )
        self.joint = nn.Sequential(nn.Linear(ch * 16 + hidden, hidden), nn.LeakyReLU(0.2, inplace=True))
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        features = self.joint(torch.cat([self.image_branch(x), self.latent_branch(z)], dim=1))
        return self.head(features).squeeze(1), features

    def image_features(self, x: Tensor) -> list[Tensor]:
        """The image branch's feature maps, one per conv block (after its activation)."""
        maps = []
        for layer in self.image_branch:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                maps.append(x)
        return maps

