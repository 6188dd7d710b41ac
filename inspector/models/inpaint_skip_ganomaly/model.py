"""Inpainting Skip-GANomaly (the variant of an MSc project on car damage detection with GANomaly and
Skip-GANomaly, City, University of London, 2022): reconstruction recast as image completion.

Skip-GANomaly's U-Net can copy an anomaly through its skip connections. Here the same networks
learn to *complete* hidden regions of good images, and scoring projects an input toward the
good-image distribution: hide each pixel once (a checkerboard of cells, four passes), then
repeatedly hide the regions whose residual stands out and complete them from their
surroundings. The final residual is the anomaly map.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from inspector.models.base import bounded, StepContext, top_fraction_mean
from inspector.models.components.skip_core import ScoredSkipConfig, ScoredSkipGanomaly
from inspector.models.inpaint_skip_ganomaly.loss import hole_weights
from inspector.models.inpaint_skip_ganomaly.masks import grid_masks, random_masks
from inspector.models.inpaint_skip_ganomaly.torch_model import completion_generator, completion_input


@dataclass
class InpaintSkipGanomalyConfig(ScoredSkipConfig):
    hole_weight: float = bounded(6.0, 0.0, 1e6)  # L1 weight of hidden pixels relative to visible ones
    mask_area_min: float = bounded(0.1, 0.0, 1.0)  # training masks hide this much of the image ...
    mask_area_max: float = bounded(0.3, 0.0, 1.0)  # ... up to this much
    grid_cells: int = bounded(8, 2, 128)  # the scoring checkerboard has grid_cells × grid_cells cells
    iterations: int = bounded(3, 0, 64)  # hide-and-complete rounds after the checkerboard pass (0 = checkerboard only)
    seed_fraction: float = bounded(0.05, 0.0, 1.0)  # each round hides at most this top fraction of pixels (then dilates)
    mask_quantile: float = bounded(0.995, 0.0, 1.0)  # a residual "stands out" above this quantile of held-out good pixels
    score_weight: float = bounded(1.0, 0.0, 1.0)  # map term only by default; < 1 adds the discriminator-feature distance

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.mask_area_min <= self.mask_area_max < 1.0:
            raise ValueError("need 0 < mask_area_min <= mask_area_max < 1")
        if not 2 <= self.grid_cells <= self.image_size // 2:
            raise ValueError(f"grid_cells must be between 2 and image_size / 2, got {self.grid_cells}")
        if self.iterations < 0 or not 0.0 < self.seed_fraction < 1.0 or not 0.0 < self.mask_quantile < 1.0:
            raise ValueError("iterations must be >= 0; seed_fraction and mask_quantile in (0, 1)")


class InpaintSkipGanomaly(ScoredSkipGanomaly):
    name = "inpaint-skip-ganomaly"
    description = "Skip-GANomaly trained to complete masked regions; scores by iterative hide-and-complete"
    Config = InpaintSkipGanomalyConfig
    main_loss = "g_loss"

    def __init__(self, config: InpaintSkipGanomalyConfig) -> None:
        super().__init__(config)
        # residual level above which a pixel stands out (fitted on held-out good images; 0 = always iterate)
        self.register_buffer("pixel_threshold", torch.zeros(1))

    def build_generator(self) -> nn.Module:
        c = self.config
        return completion_generator(c.image_size, c.channels, c.width, c.max_mult)

    def complete(self, x: Tensor, mask: Tensor) -> Tensor:
        """The generator's completion of x where ``mask`` (B, 1, H, W) is 1."""
        return self.generator(completion_input(x, mask))

    def training_step(self, batch: Tensor, ctx: StepContext) -> dict[str, float]:
        c = self.config
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))  # follows the trainer's seed
        masks = random_masks(len(batch), c.image_size, rng, (c.mask_area_min, c.mask_area_max), c.grid_cells)
        mask = torch.from_numpy(masks)[:, None].to(batch.device, batch.dtype)
        return self.adversarial_step(batch, completion_input(batch, mask), ctx, hole_weights(mask, c.hole_weight))

    # --- scoring ----------------------------------------------------------------------------
    def grid_reconstruction(self, x: Tensor) -> Tensor:
        """Every pixel predicted from its surroundings without seeing itself (four checkerboard passes in one batch)."""
        b = x.shape[0]
        masks = grid_masks(self.config.image_size, self.config.grid_cells, x.device).to(x.dtype)
        out = self.complete(x.repeat(4, 1, 1, 1), masks.repeat_interleave(b, dim=0))
        return (out.view(4, b, *x.shape[1:]) * masks[:, None]).sum(dim=0)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(clean estimate, anomaly map). Images where nothing stands out keep the checkerboard
        estimate and cost no further passes (the cheap, deterministic fallback)."""
        c = self.config
        sigma = c.image_size / 32
        radius = max(1, c.image_size // 16)
        base = self.grid_reconstruction(x)
        recon, amap = base.clone(), self.residual_map(x, base, sigma)
        mask = torch.zeros_like(x[:, :1])
        stands_out = self.pixel_threshold.to(amap.dtype)
        tracing = torch.jit.is_tracing()  # an exported graph has no data-dependent branches: every pass on every image
        for _ in range(c.iterations):
            level = (_row_quantile if tracing else _torch_quantile)(amap.flatten(1).float(), 1 - c.seed_fraction).to(amap.dtype)
            seeds = (amap >= level[:, None, None]) & (amap > stands_out)
            grown = torch.maximum(mask, F.max_pool2d(seeds[:, None].to(x.dtype), 2 * radius + 1, 1, radius))
            if tracing:  # the same values: an image whose mask did not grow completes to what it had
                changed = (grown != mask).flatten(1).any(dim=1)[:, None, None, None]
                mask = grown
                recon = torch.where(changed, torch.where(mask > 0, self.complete(x, mask), base), recon)
                amap = self.residual_map(x, recon, sigma)
                continue
            active = (grown != mask).flatten(1).any(dim=1).nonzero().squeeze(1)
            if len(active) == 0:
                break
            mask = grown
            m = mask[active]
            recon[active] = torch.where(m > 0, self.complete(x[active], m), base[active])
            amap[active] = self.residual_map(x[active], recon[active], sigma)
        return recon, amap

    def _terms(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        recon, amap = self.project(batch)
        return top_fraction_mean(amap, self.config.top_fraction), self.latent_distance(batch, recon), amap, recon

    def calibrate(self, batches: Iterable[Tensor]) -> None:
        """First the level at which a residual stands out, then (with it) the score scales."""
        batches = list(batches)
        if not batches:
            return
        pixels = [self.residual_map(b, self.grid_reconstruction(b), self.config.image_size / 32).flatten() for b in batches]
        level = np.quantile(torch.cat(pixels).float().cpu().numpy(), self.config.mask_quantile)
        self.pixel_threshold.fill_(float(level))
        super().calibrate(batches)


def _torch_quantile(rows: Tensor, q: float) -> Tensor:
    return torch.quantile(rows, q, dim=1)


def _row_quantile(rows: Tensor, q: float) -> Tensor:
    """``torch.quantile(rows, q, dim=1)`` (linear interpolation) from a sort, which ONNX has and quantile has not."""
    ordered = rows.sort(dim=1).values
    position = q * (rows.shape[1] - 1)
    low = int(position)
    high = min(low + 1, rows.shape[1] - 1)
    return torch.lerp(ordered[:, low], ordered[:, high], position - low)
