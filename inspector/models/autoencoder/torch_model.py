"""Convolutional autoencoder (the baseline of a master's thesis on patch-wise and transfer-learning
GANomaly): the DCGAN encoder and decoder back to back.

The same pyramids as GANomaly's generator, so the GAN methods are compared with the very
network they build on, trained without any adversary.
"""

from __future__ import annotations

from torch import Tensor, nn

from inspector.models.components.dcgan import DCDecoder, DCEncoder


class AutoEncoder(nn.Module):
    """x → z (nz, 1, 1) → x̂ in [-1, 1]: strided 4×4 convs down, transposed convs up, Tanh out."""

    def __init__(self, image_size: int, channels: int, nz: int, width: int) -> None:
        super().__init__()
        self.encoder = DCEncoder(image_size, channels, nz, width)
        self.decoder = DCDecoder(image_size, channels, nz, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))
