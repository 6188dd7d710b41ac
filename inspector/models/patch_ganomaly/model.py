"""Patch-GANomaly (a master's thesis on patch-wise and transfer-learning GANomaly): GANomaly trained
on random patches, scored by a sliding window.

The training, sliding-window scoring and patch geometry are shared with TL-GANomaly
(``inspector.models.components.patchwise``); Patch-GANomaly's own networks are GANomaly's
(encoder–decoder–encoder generator, DCGAN discriminator) built at the patch size.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from inspector.models.components.dcgan import DCDiscriminator, weights_init
from inspector.models.components.ganomaly_core import GanomalyGenerator
from inspector.models.components.patchwise import PatchwiseConfig, PatchwiseGanomaly


@dataclass
class PatchGanomalyConfig(PatchwiseConfig):
    """Patch-GANomaly's options: the patch-wise training's and scoring's, nothing more."""


class PatchGanomaly(PatchwiseGanomaly):
    name = "patch-ganomaly"
    description = "Patch-GANomaly (after a master's thesis on patch-wise GANomaly): GANomaly on random patches, sliding-window maps at full resolution"
    Config = PatchGanomalyConfig

    def build_networks(self, c: PatchwiseConfig) -> tuple[nn.Module, nn.Module]:
        """GANomaly's generator and discriminator at the patch size."""
        generator = GanomalyGenerator(c.patch, c.channels, c.nz, c.width, c.extra_layers)
        discriminator = DCDiscriminator(c.patch, c.channels, c.width, c.extra_layers)
        generator.apply(weights_init)
        discriminator.apply(weights_init)
        return generator, discriminator
