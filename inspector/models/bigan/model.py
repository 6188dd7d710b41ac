"""BiGAN/ALI (Donahue et al., ICLR 2017; Dumoulin et al., ICLR 2017) with a WGAN-GP critic (Gulrajani et al.,
NeurIPS 2017), after the GANspection project, as an ``AnomalyModel``."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from inspector.models.base import AnomalyModel, bounded, ModelConfig, ScoreOutput, StepContext, top_fraction_mean
from inspector.models.bigan.loss import critic_loss, generator_loss, gradient_penalty
from inspector.models.bigan.torch_model import Critic, Generator
from inspector.models.components.adversarial import frozen, sample_images
from inspector.models.components.dcgan import LatentEncoder, weights_init
from inspector.models.components.two_term import calibrated_scale, register_score_scale, two_term_score


@dataclass
class BiGanConfig(ModelConfig):
    lr: float = 1e-4  # WGAN-GP: lr 1e-4, Adam betas (0.5, 0.9)
    beta1: float = 0.5
    beta2: float = 0.9
    nz: int = bounded(100, 1, 1024)  # latent size, z ~ N(0, I)
    width: int = bounded(32, 1, 128)  # channels of the first conv of encoder, generator and critic
    critic_hidden: int = bounded(256, 1, 4096)  # width of the critic's latent branch and joint features
    n_critic: int = bounded(2, 1, 100)  # critic updates per generator/encoder update, all inside one training step (paper: 5)
    gp_weight: float = bounded(10.0, 0.0, 1e6)  # λ of the gradient penalty
    w_adv: float = bounded(1.0, 0.0, 1e6)  # Wasserstein term of the generator/encoder loss
    w_fm: float = bounded(1.0, 0.0, 1e6)  # GANspection's feature L2 between real and generated pairs
    w_rec: float = bounded(50.0, 0.0, 1e6)  # L1 ||x − G(E(x))||: without it reconstructions only resemble x loosely
    score_weight: float = bounded(0.5, 0.0, 1.0)  # α: score = α·residual + (1 − α)·critic-feature distance (each calibrated)
    top_fraction: float = bounded(0.01, 0.0, 1.0)  # the residual term is the mean of this top fraction of the map

    def validate(self) -> None:
        super().validate()
        if self.n_critic < 1:
            raise ValueError(f"n_critic must be at least 1, got {self.n_critic}")
        if not 0.0 <= self.score_weight <= 1.0:
            raise ValueError(f"score_weight must be in [0, 1], got {self.score_weight}")
        if not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {self.top_fraction}")




class BiGan(AnomalyModel):
    name = "bigan"
    description = "BiGAN/ALI with a Wasserstein critic (GANspection): score = residual + critic-feature distance"
    Config = BiGanConfig
    # the L1 reconstruction: the Wasserstein terms are estimates against a critic that keeps
    # changing (they rise while it learns), so they make a poor "is it training" curve
    main_loss = "ge_rec"
    # float32 even where the CPU has bfloat16: its critic's gradient penalty is float32 anyway,
    # bf16 gained 1.0-1.3x, and it moved a small model's planted-defect AUROC by -0.11 to +0.03
    # over three seeds (bench/RESULTS.md, "Training speed")
    bf16 = False

    def __init__(self, config: BiGanConfig) -> None:
        super().__init__(config)
        c = config
        self.encoder = LatentEncoder(c.image_size, c.channels, c.nz, c.width)
        self.generator = Generator(c.image_size, c.channels, c.nz, c.width)
        self.critic = Critic(c.image_size, c.channels, c.nz, c.width, c.critic_hidden)
        self.encoder.apply(weights_init)
        self.generator.apply(weights_init)
        # means of (residual, feature distance) on held-out good images, set by calibrate()
        register_score_scale(self)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        ge = itertools.chain(self.generator.parameters(), self.encoder.parameters())
        self.optimizers = {"generator_encoder": c.adam(ge), "critic": c.adam(self.critic.parameters())}
        return self.optimizers

    def _prior(self, n: int, device: torch.device) -> Tensor:
        return torch.randn(n, self.config.nz, device=device)

    def training_step(self, batch: Tensor, ctx: StepContext) -> dict[str, float]:
        """``n_critic`` critic updates on this batch (fresh z each), then one generator/encoder update."""
        c = self.config
        with torch.no_grad(), ctx.autocast():
            z_real = self.encoder(batch).float()
        for _ in range(c.n_critic):
            z_fake = self._prior(batch.shape[0], batch.device)
            with torch.no_grad(), ctx.autocast():
                x_fake = self.generator(z_fake).float()
            with ctx.autocast():
                real_value, _ = self.critic(batch, z_real)
                fake_value, _ = self.critic(x_fake, z_fake)
                wasserstein = critic_loss(real_value.float(), fake_value.float())
            penalty = gradient_penalty(self.critic, batch, z_real, x_fake, z_fake)
            ctx.optimise(wasserstein + c.gp_weight * penalty, self.optimizers["critic"])

        z_fake = self._prior(batch.shape[0], batch.device)
        with frozen(self.critic), ctx.autocast():
            z_real = self.encoder(batch)
            x_fake = self.generator(z_fake)
            x_rec = self.generator(z_real)
            real_value, real_features = self.critic(batch, z_real)
            fake_value, fake_features = self.critic(x_fake, z_fake)
            ge = generator_loss(
                real_value.float(), fake_value.float(), real_features.float(), fake_features.float(),
                batch, x_rec.float(), c.w_adv, c.w_fm, c.w_rec,
            )
        ctx.optimise(ge["ge_loss"], self.optimizers["generator_encoder"])
        # -wasserstein: the critic's estimate of the distance between the two pair distributions
        return {k: v.item() for k, v in ge.items()} | {"critic_w": -wasserstein.item(), "critic_gp": penalty.item()}

    # --- inference ------------------------------------------------------------------------
    def _terms(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(residual term, critic-feature term, anomaly map, reconstruction) of each image."""
        x_rec = self.generator(self.encoder(batch))
        amap = self.residual_map(batch, x_rec, sigma=self.config.image_size / 32)
        return top_fraction_mean(amap, self.config.top_fraction), self._feature_distance(batch, x_rec), amap, x_rec

    def _feature_distance(self, x: Tensor, x_rec: Tensor) -> Tensor:
        """Squared distance of the critic's image features of x and G(E(x)), per location, averaged
        over locations and blocks (the critic has no BatchNorm: one pass for both is exact)."""
        distances = []
        for f in self.critic.image_features(torch.cat([x, x_rec.to(x.dtype)], dim=0)):
            f_x, f_rec = f.chunk(2, dim=0)
            distances.append((f_x - f_rec).pow(2).mean(dim=1).flatten(1).mean(dim=1))
        return torch.stack(distances).mean(dim=0)

    def score(self, batch: Tensor, reconstruct: bool = True) -> ScoreOutput:
        """The score is made from the reconstruction: it is returned whatever ``reconstruct`` says."""
        residual, feature, amap, x_rec = self._terms(batch)
        score = two_term_score(residual, feature, self.config.score_weight, self.score_scale)
        return ScoreOutput(image_score=score, anomaly_map=amap, reconstruction=x_rec)

    def calibrate(self, batches: Iterable[Tensor]) -> None:
        """Divide each score term by its mean on held-out good images, so α weighs like with like."""
        scale = calibrated_scale(self._terms(batch)[:2] for batch in batches)
        if scale is not None:
            self.score_scale.copy_(scale)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` new images G(z), z ~ N(0, I), in [-1, 1] (eval mode; ``generator`` makes them repeatable)."""
        return sample_images(self, n, generator)
