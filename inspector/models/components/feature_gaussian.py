"""A Gaussian per grid position of good parts' features (PaDiM, Defard et al., ICPR 2020).

Pretrained features of a good part vary little at a given place of an aligned part; a defect moves
them away. The Mahalanobis distance to the good parts' mean at each position, under their
covariance there, is an anomaly map that needs no training beyond one pass over the good images.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class PositionGaussian(nn.Module):
    """Mean and precision of ``channels`` features at each of ``grid`` × ``grid`` positions.

    Features of any resolution of at least ``grid`` are average-pooled to the grid. Statistics are
    summed in float64 on the CPU (every device can fit; MPS has no float64), and the covariance gets
    a ridge of ``ridge`` × its mean variance, so that fewer good images than channels still fit.
    """

    def __init__(self, channels: int, grid: int, ridge: float = 0.01) -> None:
        super().__init__()
        self.grid, self.ridge = grid, ridge
        positions = grid * grid
        self.register_buffer("mean", torch.zeros(positions, channels))
        self.register_buffer("precision", torch.eye(channels).repeat(positions, 1, 1))
        self.register_buffer("n_fitted", torch.zeros((), dtype=torch.long))  # images fitted; 0 = not fitted

    @property
    def fitted(self) -> bool:
        return int(self.n_fitted) > 1

    def _per_position(self, features: Tensor) -> Tensor:
        """(B, C, H, W) → (B, positions, C) at the grid."""
        pooled = F.adaptive_avg_pool2d(features.float(), self.grid)
        return pooled.flatten(2).transpose(1, 2)

    def fit(self, batches: Iterable[Tensor]) -> None:
        """Fit on feature batches (B, C, H, W) of good images."""
        n, total, outer = 0, None, None
        for features in batches:
            x = self._per_position(features).detach().cpu().double()
            if total is None:
                total, outer = x.sum(0), torch.einsum("bpc,bpd->pcd", x, x)
            else:
                total += x.sum(0)
                outer += torch.einsum("bpc,bpd->pcd", x, x)
            n += len(x)
        if n < 2:
            raise ValueError(f"a feature Gaussian needs at least 2 good images, got {n}")
        mean = total / n
        cov = (outer - n * torch.einsum("pc,pd->pcd", mean, mean)) / (n - 1)
        variance = cov.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(1e-12)
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype)
        precision = torch.linalg.inv(cov + self.ridge * variance.view(-1, 1, 1) * eye)
        self.mean.copy_(mean.float())
        self.precision.copy_(precision.float())
        self.n_fitted.fill_(n)

    def forward(self, features: Tensor) -> Tensor:
        """Mahalanobis distance of each position's features, (B, grid, grid)."""
        d = self._per_position(features) - self.mean
        squared = torch.einsum("bpc,pcd,bpd->bp", d, self.precision, d)
        return squared.clamp_min(0).sqrt().view(-1, self.grid, self.grid)
