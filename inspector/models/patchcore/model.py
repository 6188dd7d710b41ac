"""PatchCore (Roth, Pemula, Zepeda, Schölkopf, Brox, Gehler; "Towards Total Recall in Industrial
Anomaly Detection", CVPR 2022) as an ``AnomalyModel``.

Mid-level patch features of good parts from a frozen ImageNet MobileNetV2 (two stages, each
averaged over 3 × 3 neighbours, on one grid) go into a memory bank, thinned by greedy k-center
selection to a coreset that still covers them. A test patch scores its distance to the nearest
good patch in the bank: the image score is the largest over the image's patches, the map those
distances upsampled and smoothed. Nothing is trained: one pass over the good images fits it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from inspector.models.base import ScoreOutput, bounded, ModelConfig
from inspector.models.components.patch_features import FittedFeatureModel, upsampled_map
from inspector.models.patchcore.memory_bank import Reservoir, greedy_coreset, nearest_distances

# the grid's stride → the two MobileNetV2 stages read (the paper's ResNet layer2 and layer3 are at 8 and 16)
STAGES = {8: (8, 16), 4: (4, 8)}


@dataclass
class PatchCoreConfig(ModelConfig):
    image_size: int = 128  # a thin crack at 64 px is under a patch of stride 8
    feature_stride: int = bounded(8, 4, 8)  # 8: stages at strides 8 and 16 (32 + 96 channels); 4: strides 4 and 8 (24 + 32)
    neighbourhood: int = bounded(3, 1, 7)  # each stage averaged over this many × this many neighbours (odd; the paper's 3)
    projection_dim: int = bounded(0, 0, 128)  # features randomly projected to this width before storing; 0 = kept whole
    coreset_ratio: float = bounded(0.1, 0.001, 1.0)  # the coreset keeps this share of the collected features
    max_bank: int = bounded(20_000, 16, 100_000)  # and at most this many rows (the model file: rows × width × 4 bytes)
    # features collected before the coreset is chosen, a uniform sample of all the training patches
    # beyond it: the fit's memory is at most this × width × 4 bytes (50,000 × 128: 26 MB)
    max_collect: int = bounded(50_000, 1_000, 1_000_000)
    reweight: bool = False  # the paper's reweighting of the image score by how dense the bank is near its nearest patch
    neighbours: int = bounded(9, 1, 64)  # the reweighting's neighbourhood in the bank (the paper's b)
    map_sigma: float = bounded(4.0, 0.0, 32.0)  # Gaussian smoothing of the map in input pixels (the paper's 4)
    pretrained_path: str = ""  # a torchvision mobilenet_v2 .pth; empty = torchvision's cache, then the package
    # what the trunk was loaded from, filled in by the model ("imagenet:<file>"); a saved model carries
    # it, and is rebuilt without looking for weights (they are in the file)
    pretrained_source: str = ""

    def validate(self) -> None:
        super().validate()
        if self.feature_stride not in STAGES:
            raise ValueError(f"feature_stride must be 4 or 8, got {self.feature_stride}")
        if self.neighbourhood % 2 == 0:
            raise ValueError(f"neighbourhood must be odd, got {self.neighbourhood}")


class PatchCore(FittedFeatureModel):
    """The bank (``bank``, rows × width) is a buffer whose row count is the fit's: a model file's
    bank is taken at its size, up to ``max_bank`` rows (``_bank_of_the_file``)."""

    name = "patchcore"
    description = "PatchCore (Roth et al., CVPR 2022): nearest good patch in a coreset memory bank of ImageNet MobileNetV2 features"
    Config = PatchCoreConfig

    def __init__(self, config: PatchCoreConfig) -> None:
        super().__init__(config)
        self.features = self.build_features(STAGES[config.feature_stride], config.neighbourhood)
        width = self.features.channels
        if config.projection_dim:
            # Johnson-Lindenstrauss: distances kept within a small factor, from the trainer's seed
            self.register_buffer("projection", torch.randn(width, config.projection_dim) / math.sqrt(config.projection_dim))
            width = config.projection_dim
        else:
            self.projection = None
        self.register_buffer("bank", torch.zeros(0, width))
        self._register_load_state_dict_pre_hook(self._bank_of_the_file)

    def _bank_of_the_file(self, state: dict, prefix: str, *_) -> None:
        """Take a saved bank at its own row count, if it has this model's width and at most
        ``max_bank`` rows; anything else is left for ``load_state_dict`` to refuse by name."""
        bank = state.get(prefix + "bank")
        if bank is None or bank.dim() != 2 or bank.shape[1] != self.bank.shape[1] or bank.shape[0] > self.config.max_bank:
            return
        self.bank = torch.zeros(tuple(bank.shape), dtype=self.bank.dtype, device=self.bank.device)

    def patches(self, batch: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Patch features of a batch as rows (B·h·w, width), and the grid (h, w)."""
        f = self.features(batch)
        b, c, h, w = f.shape
        rows = f.permute(0, 2, 3, 1).reshape(b * h * w, c)
        return (rows @ self.projection if self.projection is not None else rows), (h, w)

    def fit_normal(self, batches: Iterable[Tensor]) -> None:
        """Collect the good images' patches (at most ``max_collect``), keep a greedy coreset of
        ``coreset_ratio`` of them, at most ``max_bank`` rows, as the bank. Same data, same bank."""
        c = self.config
        generator = torch.Generator().manual_seed(0)
        collected = Reservoir(c.max_collect, generator)
        for batch in batches:
            collected.add(self.patches(batch)[0])
        if collected.rows is None:
            raise ValueError("patchcore: no good images to fit")
        rows = collected.rows
        k = min(max(1, round(c.coreset_ratio * len(rows))), c.max_bank)
        self.bank = rows[greedy_coreset(rows, k, generator)].to(self.bank.device)

    def score(self, batch: Tensor, reconstruct: bool = True) -> ScoreOutput:
        """The reconstruction is the input itself (None unless asked for)."""
        rows, (h, w) = self.patches(batch)
        # unfitted: the distance to the origin, as PaDiM's unfitted Gaussian (mean 0, identity)
        bank = self.bank if len(self.bank) else self.bank.new_zeros(1, self.bank.shape[1])
        distance, index = nearest_distances(rows, bank)
        distance, index = distance.view(len(batch), h * w), index.view(len(batch), h * w)
        image_score, worst = distance.max(dim=1)
        if self.config.reweight and len(bank) > 1:
            image_score = image_score * self._weight(rows.view(len(batch), h * w, -1), bank, worst, index)
        amap = upsampled_map(distance.view(-1, h, w), tuple(batch.shape[-2:]), self.config.map_sigma)
        return ScoreOutput(image_score, amap, batch.clamp(-1, 1) if reconstruct else None)

    def _weight(self, rows: Tensor, bank: Tensor, worst: Tensor, index: Tensor) -> Tensor:
        """The paper's reweighting (eq. 7): 1 − softmax of the worst patch's distances to its nearest
        bank row m* and to m*'s ``neighbours`` nearest rows, at m*. Near 1 where the bank is sparse
        around m* (an unusual good patch scores less), near 1 − 1/b where it is dense."""
        i = torch.arange(len(rows), device=rows.device)
        test, nearest = rows[i, worst], bank[index[i, worst]]  # (B, width) each
        b = min(self.config.neighbours, len(bank))
        support = torch.cdist(nearest, bank).topk(b, dim=1, largest=False).indices  # m* itself first
        d = torch.cdist(test[:, None], bank[support]).squeeze(1)  # (B, b)
        return 1 - torch.softmax(d, dim=1)[:, 0]
