"""GANomaly as an ``AnomalyModel``: the paper's training, eval-mode scoring, pixel maps; see README.md."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from inspector.models.base import AnomalyModel, bounded, ModelConfig, ScoreOutput, StepContext, top_fraction_mean
from inspector.models.components.adversarial import discriminator_loss, frozen, reset_if_won
from inspector.models.components.dcgan import DCDiscriminator, weights_init
from inspector.models.components.ganomaly_core import GanomalyGenerator, generator_loss
from inspector.models.components.two_term import calibrated_scale, register_score_scale, two_term_score
from inspector.models.ganomaly.scores import feature_distance_map, latent_distance


@dataclass
class GanomalyConfig(ModelConfig):
    nz: int = bounded(100, 1, 1024)  # latent size (paper: 100)
    width: int = bounded(64, 1, 128)  # channels of the first conv (ngf = ndf = 64 in the paper)
    extra_layers: int = bounded(0, 0, 8)
    w_adv: float = bounded(1.0, 0.0, 1e6)
    w_con: float = bounded(50.0, 0.0, 1e6)
    w_enc: float = bounded(1.0, 0.0, 1e6)
    # How an image is scored (training is the paper's whatever is chosen here):
    #   "latent"         ||z - ẑ||², the paper's score;
    #   "reconstruction" mean of the top ``top_fraction`` of the smoothed residual map |x - x̂|;
    #   "features"       mean of the top ``top_fraction`` of a feature-space residual map: squared
    #                    distance between the first ``feature_layers`` blocks of ``feature_net``
    #                    ("encoder" = the generator's first encoder, "discriminator") for x and x̂;
    #   "combined"       score_weight · reconstruction + (1 - score_weight) · latent, each divided
    #                    by its mean over held-out good images (``calibrate``), never a test set's.
    score_mode: str = "reconstruction"  # measured better than "latent" on ELPV: see README.md
    score_weight: float = bounded(0.9, 0.0, 1.0)
    top_fraction: float = bounded(0.01, 0.0, 1.0)
    map_sigma: float = bounded(0.0, 0.0, 64.0)  # Gaussian smoothing of the residual map in pixels; 0 = image_size / 32
    feature_net: str = "encoder"
    feature_layers: int = bounded(1, 1, 16)

    def validate(self) -> None:
        super().validate()
        if self.score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode must be one of {', '.join(SCORE_MODES)}, got {self.score_mode!r}")
        if self.feature_net not in ("encoder", "discriminator"):
            raise ValueError(f"feature_net must be encoder or discriminator, got {self.feature_net!r}")
        if not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {self.top_fraction}")
        if not 0.0 <= self.score_weight <= 1.0:
            raise ValueError(f"score_weight must be in [0, 1], got {self.score_weight}")
        if self.feature_layers < 1:
            raise ValueError(f"feature_layers must be at least 1, got {self.feature_layers}")


SCORE_MODES = ("latent", "reconstruction", "features", "combined")


class Ganomaly(AnomalyModel):
    name = "ganomaly"
    description = "GANomaly (Akcay 2018): encoder-decoder-encoder GAN; score = reconstruction residual (paper: latent distance)"
    Config = GanomalyConfig
    main_loss = "g_loss"

    def __init__(self, config: GanomalyConfig) -> None:
        super().__init__(config)
        c = config
        self.generator = GanomalyGenerator(c.image_size, c.channels, c.nz, c.width, c.extra_layers)
        self.discriminator = DCDiscriminator(c.image_size, c.channels, c.width, c.extra_layers)
        self.generator.apply(weights_init)
        self.discriminator.apply(weights_init)
        # means of the latent and reconstruction terms on held-out good images (score_mode="combined");
        # stored in that order, the reverse of the score's, as model files have always had them
        register_score_scale(self)
        # NHWC convolutions in training too: neutral on CPU, tensor cores on CUDA (the torch backend
        # scores every method in NHWC on CPU)
        self.to(memory_format=torch.channels_last)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        self.optimizers = {"generator": c.adam(self.generator.parameters()), "discriminator": c.adam(self.discriminator.parameters())}
        return self.optimizers

    def training_step(self, batch: Tensor, ctx: StepContext) -> dict[str, float]:
        """One generator update, then one discriminator update, as in the paper's code.

        Same losses and updates as the reference implementation, with less work: the
        discriminator's pass over the real batch is shared by both updates (its weights do not
        change in between), and the generator's backward pass skips the discriminator's weight
        gradients (the generator optimiser never uses them). One host sync per step. The only
        difference: D's BatchNorm running statistics see the real batch once per step, not twice.
        """
        c = self.config
        batch = batch.contiguous(memory_format=torch.channels_last)
        discriminator = self.discriminator
        with ctx.autocast():
            real_logit, real_features = discriminator(batch)
            x_hat, z, z_hat = self.generator(batch)
            with frozen(discriminator):
                _, fake_features = discriminator(x_hat)
            g = generator_loss(real_features, fake_features, batch, x_hat, z, z_hat, c.w_adv, c.w_con, c.w_enc)
        ctx.optimise(g["g_loss"], self.optimizers["generator"])

        with ctx.autocast():
            fake_logit, _ = discriminator(x_hat.detach())
            d_loss = discriminator_loss(real_logit, fake_logit)
        ctx.optimise(d_loss, self.optimizers["discriminator"])
        names = [*g, "d_loss"]
        values = torch.stack([v.detach().float() for v in g.values()] + [d_loss.detach().float()]).tolist()
        losses = dict(zip(names, values))
        reset_if_won(discriminator, losses["d_loss"])
        return losses

    def _sigma(self) -> float:
        return self.config.map_sigma or self.config.image_size / 32

    def _reconstruct(self, batch: Tensor, need_latent: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        """(x in NHWC, x̂, ||z - ẑ||² or None): the second encoder runs only when its term is used."""
        g = self.generator
        batch = batch.contiguous(memory_format=torch.channels_last)
        z = g.encoder1(batch)
        x_hat = g.decoder(z)
        latent = latent_distance(z, g.encoder2(x_hat)) if need_latent else None
        return batch, x_hat, latent

    def _terms(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(latent distance, reconstruction score, residual map, x̂)."""
        batch, x_hat, latent = self._reconstruct(batch, need_latent=True)
        amap = self.residual_map(batch, x_hat, sigma=self._sigma())
        return latent, top_fraction_mean(amap, self.config.top_fraction), amap, x_hat

    def feature_map(self, batch: Tensor, x_hat: Tensor) -> Tensor:
        c = self.config
        net = self.generator.encoder1 if c.feature_net == "encoder" else self.discriminator
        batch = batch.contiguous(memory_format=torch.channels_last)
        return feature_distance_map(net.features, batch, x_hat, c.feature_layers, tuple(batch.shape[-2:]))

    def score(self, batch: Tensor, reconstruct: bool = True) -> ScoreOutput:
        """Every score mode is made from the reconstruction: it is returned whatever ``reconstruct`` says."""
        c = self.config
        if c.score_mode == "features":
            batch, x_hat, _ = self._reconstruct(batch, need_latent=False)
            amap = self.feature_map(batch, x_hat)
            return ScoreOutput(top_fraction_mean(amap, c.top_fraction), amap, x_hat)
        if c.score_mode == "reconstruction":
            batch, x_hat, _ = self._reconstruct(batch, need_latent=False)
            amap = self.residual_map(batch, x_hat, sigma=self._sigma())
            return ScoreOutput(top_fraction_mean(amap, c.top_fraction), amap, x_hat)
        latent, recon, amap, x_hat = self._terms(batch)
        if c.score_mode == "latent":
            score = latent
        else:
            score = two_term_score(recon, latent, c.score_weight, self.score_scale.flip(0))
        return ScoreOutput(image_score=score, anomaly_map=amap, reconstruction=x_hat)

    def calibrate(self, batches: Iterable[Tensor]) -> None:
        """Means of the reconstruction and latent terms over held-out good images (for "combined")."""
        terms = (self._terms(batch) for batch in batches)
        scale = calibrated_scale((recon, latent) for latent, recon, _, _ in terms)
        if scale is not None:
            self.score_scale.copy_(scale.flip(0))  # stored [latent, reconstruction]
