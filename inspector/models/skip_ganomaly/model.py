"""Skip-GANomaly as an ``AnomalyModel``: paper loss weights, eval-mode scoring, calibrated score."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from inspector.models.base import AnomalyModel, bounded, frozen, ModelConfig, ScoreOutput, StepContext, top_fraction_mean, weights_init
from inspector.models.skip_ganomaly.loss import discriminator_loss, generator_loss
from inspector.models.skip_ganomaly.torch_model import Discriminator, UNetGenerator


@dataclass
class SkipGanomalyNetConfig(ModelConfig):
    """The networks and the paper's loss weights: what every Skip-GANomaly variant trains."""

    width: int = bounded(32, 1, 128)  # first conv's channels (paper: 64); 32 keeps CPU training affordable at 64 px
    max_mult: int = bounded(8, 1, 16)  # U-Net channels stop doubling at width · max_mult
    w_adv: float = bounded(1.0, 0.0, 1e6)
    w_con: float = bounded(40.0, 0.0, 1e6)
    w_lat: float = bounded(1.0, 0.0, 1e6)

    def validate(self) -> None:
        super().validate()
        if self.width < 1 or self.max_mult < 1:
            raise ValueError("width and max_mult must be positive")


@dataclass
class SkipGanomalyConfig(SkipGanomalyNetConfig):
    # score = score_weight · reconstruction + (1 - score_weight) · latent, each divided by its
    # mean over held-out good images (the paper min–max normalises over the test set instead)
    score_weight: float = bounded(0.9, 0.0, 1.0)
    top_fraction: float = bounded(0.01, 0.0, 1.0)  # reconstruction term = mean of this top fraction of the smoothed residual

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.score_weight <= 1.0:
            raise ValueError(f"score_weight must be in [0, 1], got {self.score_weight}")
        if not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {self.top_fraction}")


class SkipGanomalyNetworks(AnomalyModel):
    """Skip-GANomaly's generator, discriminator and adversarial training; each variant scores its own way."""

    main_loss = "g_loss"

    def __init__(self, config: SkipGanomalyNetConfig) -> None:
        super().__init__(config)
        c = config
        self.generator = self.build_generator()
        self.discriminator = Discriminator(c.image_size, c.channels, c.width)
        self.generator.apply(weights_init)
        self.discriminator.apply(weights_init)

    def build_generator(self) -> nn.Module:
        c = self.config
        return UNetGenerator(c.image_size, c.channels, c.channels, c.width, c.max_mult)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        betas = (self.config.beta1, self.config.beta2)
        self.optimizers = {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=self.config.lr, betas=betas),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr, betas=betas),
        }
        return self.optimizers

    # --- training ---------------------------------------------------------------------------
    def adversarial_step(
        self, x: Tensor, generator_input: Tensor, ctx: StepContext, pixel_weight: Tensor | None = None
    ) -> dict[str, float]:
        """One generator update then one discriminator update; shared with the inpainting variant."""
        c = self.config
        with ctx.autocast():
            x_hat = self.generator(generator_input)
            with torch.no_grad():
                _, real_features = self.discriminator(x)
            with frozen(self.discriminator):
                _, fake_features = self.discriminator(x_hat)
                g = generator_loss(real_features, fake_features, x, x_hat, c.w_adv, c.w_con, c.w_lat, pixel_weight)
        ctx.optimise(g["g_loss"], self.optimizers["generator"])

        with ctx.autocast():
            real_logit, _ = self.discriminator(x)
            fake_logit, _ = self.discriminator(x_hat.detach())
            d_loss = discriminator_loss(real_logit, fake_logit)
        ctx.optimise(d_loss, self.optimizers["discriminator"])
        if d_loss.item() < 1e-5:  # the reference code's remedy for a discriminator that has won
            self.discriminator.apply(weights_init)
        return {k: v.item() for k, v in g.items()} | {"d_loss": d_loss.item()}

    def training_step(self, batch: Tensor, ctx: StepContext) -> dict[str, float]:
        return self.adversarial_step(batch, batch, ctx)


class SkipGanomaly(SkipGanomalyNetworks):
    name = "skip-ganomaly"
    description = "Skip-GANomaly (Akçay 2019): U-Net generator with skips + DCGAN discriminator"
    Config = SkipGanomalyConfig

    def __init__(self, config: SkipGanomalyConfig) -> None:
        super().__init__(config)
        # per-term means (reconstruction, latent) on held-out good images
        self.register_buffer("score_scale", torch.ones(2))

    # --- scoring ----------------------------------------------------------------------------
    def latent_distance(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """Mean squared difference of the discriminator's features of x and x̂, per image."""
        _, real = self.discriminator(x)
        _, fake = self.discriminator(x_hat)
        return (real.float() - fake.float()).pow(2).flatten(1).mean(dim=1)

    def _terms(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x_hat = self.generator(batch)
        amap = self.residual_map(batch, x_hat, sigma=self.config.image_size / 32)
        recon = top_fraction_mean(amap, self.config.top_fraction)
        return recon, self.latent_distance(batch, x_hat), amap, x_hat

    def score(self, batch: Tensor) -> ScoreOutput:
        recon, latent, amap, x_hat = self._terms(batch)
        w = self.config.score_weight
        score = w * recon / self.score_scale[0] + (1 - w) * latent / self.score_scale[1]
        return ScoreOutput(image_score=score, anomaly_map=amap, reconstruction=x_hat)

    def calibrate(self, batches: Iterable[Tensor]) -> None:
        recons, latents = [], []
        for batch in batches:
            recon, latent, _, _ = self._terms(batch)
            recons.append(recon)
            latents.append(latent)
        if not recons:
            return
        means = torch.stack([torch.cat(recons).mean(), torch.cat(latents).mean()])
        self.score_scale.copy_(means.clamp_min(1e-12))
