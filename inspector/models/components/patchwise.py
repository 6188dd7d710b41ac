"""Patch-wise GANomaly, after a master's thesis on patch-wise and transfer-learning GANomaly
("Anomaly Detection with Ganomaly: patch-wise analysis and transfer learning"): the training and
scoring that Patch-GANomaly and TL-GANomaly share.

The whole image is kept at a working resolution (``image_size``, e.g. 256) and the GAN sees
``patch_size`` crops of it (e.g. 32), so small defects on large parts stay several pixels
wide instead of being averaged away by squashing the part into 64 pixels. At inference a
window slides over the image with ``stride``; per-patch reconstructions, residuals and latent
distances are stitched back into full-resolution maps (overlaps averaged), and the image score
is the maximum or the top-k mean of the chosen map. Each method builds its own networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor, nn

from inspector.models.base import AnomalyModel, bounded, gaussian_blur, ModelConfig, ScoreOutput, StepContext, top_fraction_mean
from inspector.models.components.adversarial import discriminator_step
from inspector.models.components.ganomaly_core import generator_loss
from inspector.models.components.two_term import two_term_score

MAP_MODES = ("residual", "latent", "combined")
REDUCTIONS = ("max", "topk")


@dataclass
class PatchwiseConfig(ModelConfig):
    """``image_size`` is the working resolution of the whole image; ``patch_size`` the GAN's input."""

    image_size: int = 128
    patch_size: int = bounded(32, 0, 256)  # 0 = the whole image (one window: plain GANomaly with map scoring)
    stride: int = bounded(0, 0, 256)  # sliding-window step at inference; 0 = patch_size // 2 (every pixel seen by 4 windows)
    patches_per_image: int = bounded(8, 1, 1024)  # random crops per image in each training step
    nz: int = bounded(100, 1, 1024)  # latent size (GANomaly paper: 100)
    width: int = bounded(32, 1, 128)  # channels of the first conv (paper: 64; 32 keeps CPU training sensible, see README)
    extra_layers: int = bounded(0, 0, 8)
    w_adv: float = bounded(1.0, 0.0, 1e6)
    w_con: float = bounded(50.0, 0.0, 1e6)
    w_enc: float = bounded(1.0, 0.0, 1e6)
    # which stitched map is the anomaly map and the source of the image score:
    # "residual" = |x − x̂| per pixel, overlaps averaged, Gaussian-smoothed (sharp localisation);
    # "latent" = each patch's ||z − ẑ||² spread over its window (GANomaly's own score, blocky);
    # "combined" = map_weight · residual + (1 − map_weight) · latent, each divided by its mean on
    # held-out good images (calibrate), so neither term dominates by its units.
    map_mode: str = "residual"
    map_weight: float = bounded(0.5, 0.0, 1.0)
    score_reduce: str = "topk"  # "max" of the map, or "topk" = mean of its top topk_fraction pixels
    topk_fraction: float = bounded(0.01, 0.0, 1.0)
    sigma: float = bounded(2.0, 0.0, 64.0)  # Gaussian smoothing of the stitched map, in working-resolution pixels
    score_batch: int = bounded(256, 1, 8192)  # patches per forward pass at inference (memory, not results)

    def validate(self) -> None:
        super().validate()
        p = self.patch_size
        if p != 0 and (p < 16 or p & (p - 1) or p > self.image_size):
            raise ValueError(f"patch_size must be 0 (whole image) or a power of two between 16 and image_size ({self.image_size}), got {p}")
        p = self.patch
        if not 0 <= self.stride <= p:
            raise ValueError(f"stride must be between 1 and patch_size ({p}), or 0 for patch_size // 2; got {self.stride}")
        if self.patches_per_image < 1 or self.score_batch < 1:
            raise ValueError("patches_per_image and score_batch must be at least 1")
        if self.map_mode not in MAP_MODES:
            raise ValueError(f"map_mode must be one of {', '.join(MAP_MODES)}, got {self.map_mode!r}")
        if self.score_reduce not in REDUCTIONS:
            raise ValueError(f"score_reduce must be one of {', '.join(REDUCTIONS)}, got {self.score_reduce!r}")
        if not 0 < self.topk_fraction <= 1 or not 0 <= self.map_weight <= 1:
            raise ValueError("topk_fraction must be in (0, 1] and map_weight in [0, 1]")

    @property
    def patch(self) -> int:
        """The GAN's input side: ``patch_size``, or the whole working image when it is 0."""
        return self.patch_size or self.image_size

    @property
    def window_stride(self) -> int:
        return self.stride or max(1, self.patch // 2)


def reduce_map(maps: Tensor, how: str, fraction: float) -> Tensor:
    """Image score from a (B, H, W) map: its maximum, or the mean of its largest ``fraction`` of pixels."""
    if how == "max":
        return maps.flatten(1).amax(dim=1)
    return top_fraction_mean(maps, fraction)


class PatchwiseGanomaly(AnomalyModel):
    """GANomaly's training on random patches and scoring by a sliding window; a method builds the networks."""

    main_loss = "g_loss"

    def __init__(self, config: PatchwiseConfig) -> None:
        super().__init__(config)
        self.generator, self.discriminator = self.build_networks(config)
        # mean of the residual and latent maps on held-out good images, for map_mode="combined"
        self.register_buffer("map_scale", torch.ones(2))

    def build_networks(self, c: PatchwiseConfig) -> tuple[nn.Module, nn.Module]:
        """(generator, discriminator) at the patch size, initialised: a GANomaly generator's interface
        (x → (x̂, z, ẑ)) and a discriminator's (x → (logit, features))."""
        raise NotImplementedError

    # --- training -------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        trainable = [p for p in self.generator.parameters() if p.requires_grad]
        self.optimizers = {"generator": c.adam(trainable), "discriminator": c.adam(self.discriminator.parameters())}
        return self.optimizers

    def training_step(self, batch: Tensor, ctx: StepContext) -> dict[str, float]:
        c = self.config
        x = random_patches(batch, c.patch, c.patches_per_image, ctx.generator)
        with ctx.autocast():
            x_hat, z, z_hat = self.generator(x)
            _, real_features = self.discriminator(x)
            _, fake_features = self.discriminator(x_hat)
            g = generator_loss(real_features, fake_features, x, x_hat, z, z_hat, c.w_adv, c.w_con, c.w_enc)
        ctx.optimise(g["g_loss"], self.optimizers["generator"])

        d_loss = discriminator_step(self.discriminator, x, x_hat, self.optimizers["discriminator"], ctx)
        return {k: v.item() for k, v in g.items()} | {"d_loss": d_loss}

    # --- inference ------------------------------------------------------------------------
    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The working resolution: the same squash as training, so a patch covers the same part area.

        ``score`` itself slides over any size; keeping the training geometry is what keeps the
        patches' scale (and so the learned appearance of a good patch) the same.
        """
        return self.config.image_size, self.config.image_size

    def _maps(self, batch: Tensor, reconstruct: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """Stitched residual map (B, H, W), latent map (B, H, W) and reconstruction (B, C, H, W;
        stitched only when ``reconstruct``: the maps come from the windows)."""
        c = self.config
        h, w = batch.shape[-2:]
        windows, origins = extract_windows(batch, c.patch, c.window_stride)
        b, n = windows.shape[:2]
        flat = windows.flatten(0, 1)
        recons, latents = [], []
        for chunk in flat.split(c.score_batch):
            x_hat, z, z_hat = self.generator(chunk)
            recons.append(x_hat)
            latents.append((z - z_hat).float().pow(2).flatten(1).mean(dim=1))
        x_hat = torch.cat(recons).view_as(windows)
        latent = torch.cat(latents).view(b, n, 1, 1, 1).expand(b, n, 1, c.patch, c.patch)
        residual = (windows - x_hat).abs().mean(dim=2, keepdim=True)
        residual_map = gaussian_blur(stitch(residual, origins, h, w), c.sigma).squeeze(1)
        latent_map = gaussian_blur(stitch(latent, origins, h, w), c.sigma).squeeze(1)
        return residual_map, latent_map, stitch(x_hat, origins, h, w) if reconstruct else None

    def anomaly_map(self, residual_map: Tensor, latent_map: Tensor) -> Tensor:
        c = self.config
        if c.map_mode == "residual":
            return residual_map
        if c.map_mode == "latent":
            return latent_map
        return two_term_score(residual_map, latent_map, c.map_weight, self.map_scale)

    def score(self, batch: Tensor, reconstruct: bool = True) -> ScoreOutput:
        """The windows' reconstructions are scored; stitching them into one image only when asked for."""
        residual_map, latent_map, reconstruction = self._maps(batch, reconstruct)
        amap = self.anomaly_map(residual_map, latent_map).clamp_min(0)
        score = reduce_map(amap, self.config.score_reduce, self.config.topk_fraction)
        return ScoreOutput(score, amap, reconstruction.clamp(-1, 1) if reconstruction is not None else None)

    def calibrate(self, batches: Iterable[Tensor]) -> None:
        """Mean residual and latent map values on held-out good images (scales for "combined")."""
        sums, pixels = torch.zeros(2, dtype=torch.float64), 0
        for batch in batches:
            residual_map, latent_map, _ = self._maps(batch, reconstruct=False)
            sums += torch.stack([residual_map.sum(), latent_map.sum()]).double().cpu()
            pixels += residual_map.numel()
        if pixels:
            self.map_scale.copy_((sums / pixels).clamp_min(1e-12).to(self.map_scale))


# --- patch geometry ------------------------------------------------------------------------
def random_patches(batch: Tensor, size: int, per_image: int, generator: torch.Generator | None = None) -> Tensor:
    """``per_image`` random ``size``×``size`` crops of every image: (B·per_image, C, size, size)."""
    b, c, h, w = batch.shape
    if size >= h and size >= w:
        return batch
    n = b * per_image
    ys = torch.randint(0, h - size + 1, (n,), generator=generator)
    xs = torch.randint(0, w - size + 1, (n,), generator=generator)
    offsets = torch.arange(size)
    rows = (ys[:, None] + offsets).to(batch.device)  # (n, size)
    cols = (xs[:, None] + offsets).to(batch.device)
    images = torch.arange(b, device=batch.device).repeat_interleave(per_image)
    # advanced indexing → (n, size, size, C); channels back to dim 1
    crops = batch.permute(0, 2, 3, 1)[images[:, None, None], rows[:, :, None], cols[:, None, :]]
    return crops.permute(0, 3, 1, 2).contiguous()


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Window origins along one axis: every ``stride`` pixels, plus one flush with the far edge."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def extract_windows(batch: Tensor, size: int, stride: int) -> tuple[Tensor, list[tuple[int, int]]]:
    """All sliding windows of every image: (B, L, C, size, size) and the L (y, x) origins."""
    h, w = batch.shape[-2:]
    origins = [(y, x) for y in window_starts(h, size, stride) for x in window_starts(w, size, stride)]
    windows = torch.stack([batch[:, :, y : y + size, x : x + size] for y, x in origins], dim=1)
    return windows, origins


def stitch(values: Tensor, origins: list[tuple[int, int]], height: int, width: int) -> Tensor:
    """Average per-window maps (B, L, C, s, s) over their overlaps into (B, C, height, width)."""
    b, _, c, s, _ = values.shape
    total = values.new_zeros(b, c, height, width)
    count = values.new_zeros(1, 1, height, width)
    for i, (y, x) in enumerate(origins):
        total[:, :, y : y + s, x : x + s] += values[:, i]
        count[:, :, y : y + s, x : x + s] += 1
    return total / count
