"""GANomaly as an ``AnomalyModel``: paper defaults, eval-mode scoring, pixel maps."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from inspector.models.base import AnomalyModel, ModelConfig, ScoreOutput, StepContext, weights_init
from inspector.models.ganomaly.loss import discriminator_loss, generator_loss
from inspector.models.ganomaly.torch_model import Discriminator, Generator


@dataclass
class GanomalyConfig(ModelConfig):
    nz: int = 100  # latent size (paper: 100)
    width: int = 64  # channels of the first conv (ngf = ndf = 64 in the paper)
    extra_layers: int = 0
    w_adv: float = 1.0
    w_con: float = 50.0
    w_enc: float = 1.0
    # "latent" = ||z - ẑ||² (paper); "reconstruction" = mean of the top 1 % of the anomaly map;
    # "combined" = score_weight · reconstruction + (1 - score_weight) · latent, each divided by
    # its mean over held-out good images (so the two terms are on one scale without a test set).
    score_mode: str = "latent"
    score_weight: float = 0.9

    def validate(self) -> None:
        super().validate()
        if self.score_mode not in ("latent", "reconstruction", "combined"):
            raise ValueError(f"score_mode must be latent, reconstruction or combined, got {self.score_mode!r}")


def top_fraction_mean(maps: Tensor, fraction: float = 0.01) -> Tensor:
    """Mean of the largest ``fraction`` of each map's pixels: robust to one hot pixel, sensitive to small defects."""
    flat = maps.flatten(1)
    k = max(1, int(flat.shape[1] * fraction))
    return flat.topk(k, dim=1).values.mean(dim=1)


class Ganomaly(AnomalyModel):
    name = "ganomaly"
    description = "GANomaly (Akcay 2018): encoder-decoder-encoder GAN, score = latent distance"
    Config = GanomalyConfig
    main_loss = "g_loss"

    def __init__(self, config: GanomalyConfig) -> None:
        super().__init__(config)
        c = config
        self.generator = Generator(c.image_size, c.channels, c.nz, c.width, c.extra_layers)
        self.discriminator = Discriminator(c.image_size, c.channels, c.width, c.extra_layers)
        self.generator.apply(weights_init)
        self.discriminator.apply(weights_init)
        # per-term means on held-out good images, for score_mode="combined"
        self.register_buffer("score_scale", torch.ones(2))

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.config.beta1, self.config.beta2)
        self.optimizers = {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=self.config.lr, betas=betas),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr, betas=betas),
        }
        return self.optimizers

    def training_step(self, batch: Tensor, ctx: StepContext) -> dict[str, float]:
        c = self.config
        with ctx.autocast():
            x_hat, z, z_hat = self.generator(batch)
            _, real_features = self.discriminator(batch)
            _, fake_features = self.discriminator(x_hat)
            g = generator_loss(real_features, fake_features, batch, x_hat, z, z_hat, c.w_adv, c.w_con, c.w_enc)
        ctx.optimise(g["g_loss"], self.optimizers["generator"])

        with ctx.autocast():
            real_logit, _ = self.discriminator(batch)
            fake_logit, _ = self.discriminator(x_hat.detach())
            d_loss = discriminator_loss(real_logit, fake_logit)
        ctx.optimise(d_loss, self.optimizers["discriminator"])
        if d_loss.item() < 1e-5:  # the paper's remedy for a discriminator that has won
            self.discriminator.apply(weights_init)
        return {k: v.item() for k, v in g.items()} | {"d_loss": d_loss.item()}

    def _terms(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x_hat, z, z_hat = self.generator(batch)
        latent = (z - z_hat).pow(2).flatten(1).mean(dim=1)
        amap = self.residual_map(batch, x_hat, sigma=self.config.image_size / 32)
        return latent, top_fraction_mean(amap), amap, x_hat

    def score(self, batch: Tensor) -> ScoreOutput:
        latent, recon, amap, x_hat = self._terms(batch)
        mode = self.config.score_mode
        if mode == "latent":
            score = latent
        elif mode == "reconstruction":
            score = recon
        else:
            w = self.config.score_weight
            score = w * recon / self.score_scale[1] + (1 - w) * latent / self.score_scale[0]
        return ScoreOutput(image_score=score, anomaly_map=amap, reconstruction=x_hat)

    def calibrate(self, batches) -> None:
        latents, recons = [], []
        for batch in batches:
            latent, recon, _, _ = self._terms(batch)
            latents.append(latent)
            recons.append(recon)
        means = torch.stack([torch.cat(latents).mean(), torch.cat(recons).mean()])
        self.score_scale.copy_(means.clamp_min(1e-12))
