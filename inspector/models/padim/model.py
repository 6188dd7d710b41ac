"""PaDiM (Defard, Setkov, Loesch, Audigier; "PaDiM: a Patch Distribution Modeling Framework for
Anomaly Detection and Localization", ICPR 2020 workshops, LNCS 12664) as an ``AnomalyModel``.

Features of three stages of a frozen ImageNet MobileNetV2 are stacked on the finest stage's grid;
a random subset of their channels (the paper's random dimensionality reduction) is modelled at
each grid position by a Gaussian of the good parts' features there
(``components.feature_gaussian.PositionGaussian``). The Mahalanobis distance to it is the map,
upsampled and smoothed; the image score is the map's maximum. Nothing is trained: one pass over
the good images fits it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from inspector.models.base import ModelConfig, ScoreOutput, bounded
from inspector.models.components.feature_gaussian import PositionGaussian
from inspector.models.components.mobilenet import MobileNetV2
from inspector.models.components.patch_features import FittedFeatureModel, upsampled_map

STRIDES = (4, 8, 16)  # the paper's ResNet-18 layers 1-3 are at strides 4, 8 and 16 too
CHANNELS = sum(MobileNetV2.TAP_CHANNELS[s] for s in STRIDES)  # 24 + 32 + 96 = 152


@dataclass
class PadimConfig(ModelConfig):
    image_size: int = 128
    # channels kept of the 152, chosen at random (the paper keeps 100 of ResNet-18's 448); the model
    # file holds grid² × feature_dim² × 4 bytes of precision matrices (16² × 100²: 10 MB)
    feature_dim: int = bounded(100, 1, CHANNELS)
    # Gaussians per side, at most image_size / 4 (stride 4, the paper's). 16, not 32 at 128 px: a
    # quarter of the file (12.5 MB, not 41.6) and faster, for the same ELPV AUROC (0.863 and 0.860)
    grid: int = bounded(16, 1, 64)
    ridge: float = bounded(0.01, 1e-6, 10.0)  # covariance + ridge × its mean variance × I (the paper's ε I, 0.01)
    map_sigma: float = bounded(4.0, 0.0, 32.0)  # Gaussian smoothing of the map in input pixels (the paper's 4)
    pretrained_path: str = ""  # a torchvision mobilenet_v2 .pth; empty = torchvision's cache, then the package
    # what the trunk was loaded from, filled in by the model ("imagenet:<file>"); a saved model carries
    # it, and is rebuilt without looking for weights (they are in the file)
    pretrained_source: str = ""


class Padim(FittedFeatureModel):
    name = "padim"
    description = "PaDiM (Defard et al., ICPR 2020 workshops): a Gaussian per position of ImageNet MobileNetV2 features, Mahalanobis map"
    Config = PadimConfig

    def __init__(self, config: PadimConfig) -> None:
        super().__init__(config)
        self.features = self.build_features(STRIDES)
        # which channels are modelled: drawn from the trainer's seed, kept in the model file
        self.register_buffer("kept", torch.randperm(CHANNELS)[: config.feature_dim].sort().values)
        self.gaussian = PositionGaussian(config.feature_dim, min(config.grid, config.image_size // 4), config.ridge)

    def selected(self, batch: Tensor) -> Tensor:
        """The kept channels of the stacked features, (B, feature_dim, H / 4, W / 4)."""
        return self.features(batch).index_select(1, self.kept)

    def fit_normal(self, batches: Iterable[Tensor]) -> None:
        self.gaussian.fit(self.selected(b) for b in batches)

    def score(self, batch: Tensor, reconstruct: bool = True) -> ScoreOutput:
        """The reconstruction is the input itself (None unless asked for)."""
        amap = upsampled_map(self.gaussian(self.selected(batch)), tuple(batch.shape[-2:]), self.config.map_sigma)
        return ScoreOutput(amap.flatten(1).amax(dim=1), amap, batch.clamp(-1, 1) if reconstruct else None)
