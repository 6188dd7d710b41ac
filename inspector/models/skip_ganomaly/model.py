"""Skip-GANomaly as an ``AnomalyModel``: paper loss weights, eval-mode scoring, calibrated score.

The networks, losses and training are shared with the inpainting and segmenting variants
(``inspector.models.components.skip_core``); what is Skip-GANomaly's own is how it scores: the
smoothed residual of one reconstruction, plus the discriminator-feature (latent) distance.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from inspector.models.base import top_fraction_mean
from inspector.models.components.skip_core import ScoredSkipConfig, ScoredSkipGanomaly


@dataclass
class SkipGanomalyConfig(ScoredSkipConfig):
    """Skip-GANomaly's options: the shared networks' and the two-term score's, nothing more."""


class SkipGanomaly(ScoredSkipGanomaly):
    name = "skip-ganomaly"
    description = "Skip-GANomaly (Akçay 2019): U-Net generator with skips + DCGAN discriminator"
    Config = SkipGanomalyConfig

    def _terms(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x_hat = self.generator(batch)
        amap = self.residual_map(batch, x_hat, sigma=self.config.image_size / 32)
        recon = top_fraction_mean(amap, self.config.top_fraction)
        return recon, self.latent_distance(batch, x_hat), amap, x_hat
