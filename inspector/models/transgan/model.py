"""TransGAN (Jiang, Chang & Wang, NeurIPS 2021) + latent search, after a project on anomaly detection
with TransGAN, as an ``AnomalyModel``.

Training: a transformer GAN on good images, plus an encoder trained alongside to predict z.
Scoring: AnoGAN's iterative search (Schlegl et al., IPMI 2017) for the z whose G(z) best matches each
image, started from the encoder's guess and run for all images of a batch at once, bounded in
steps and in time; the residual |x − G(z*)| is the anomaly map.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from inspector.models.base import AnomalyModel, bounded, ModelConfig, ScoreOutput, StepContext, top_fraction_mean
from inspector.models.components.adversarial import frozen, sample_images
from inspector.models.components.dcgan import LatentEncoder, weights_init
from inspector.models.components.two_term import calibrated_scale, register_score_scale, two_term_score
from inspector.models.transgan.loss import discriminator_loss, encoder_losses, generator_loss, search_loss
from inspector.models.transgan.torch_model import Discriminator, Generator


@dataclass
class TransGanConfig(ModelConfig):
    lr: float = 1e-4  # TransGAN: lr 1e-4, Adam betas (0, 0.99)
    beta1: float = 0.0
    beta2: float = 0.99
    nz: int = bounded(128, 1, 1024)  # latent size, z ~ N(0, I)
    dim: int = bounded(64, 16, 1024)  # token width of the generator's 8×8 stage (halved per upsampling, at least 16)
    depth: int = bounded(2, 1, 16)  # transformer blocks at the 8×8 stage (one per later stage)
    d_dim: int = bounded(64, 16, 1024)  # discriminator token width
    d_depth: int = bounded(2, 1, 16)  # discriminator blocks
    encoder_width: int = bounded(32, 1, 128)  # channels of the encoder's first conv
    w_rec: float = bounded(50.0, 0.0, 1e6)  # weight of the L1 reconstruction ||x − G(E(x))|| (GANomaly uses 50 too)
    w_ziz: float = bounded(1.0, 0.0, 1e6)  # weight of ||z − E(G(z))||²
    rec_trains_generator: bool = True  # False: the reconstruction loss trains only the encoder (f-AnoGAN)
    use_encoder: bool = True  # start the search at E(x); False: best of `search_init_k` random z
    search_init_k: int = bounded(8, 1, 256)
    search_steps: int = bounded(50, 0, 10000)  # Adam steps on z per batch; 0 = encoder only (on ELPV: better and ~70× faster, see README)
    search_lr: float = bounded(0.05, 1e-08, 100.0)
    search_time_s: float = bounded(30.0, 0.0, 3600.0)  # per batch: the search stops early when this is spent
    search_lambda: float = bounded(0.1, 0.0, 1e6)  # weight of the discriminator-feature term in the search loss
    score_weight: float = bounded(0.5, 0.0, 1.0)  # α: score = α·residual + (1 − α)·feature distance (each calibrated)
    top_fraction: float = bounded(0.01, 0.0, 1.0)  # the residual term is the mean of this top fraction of the map

    def validate(self) -> None:
        super().validate()
        if self.search_steps < 0 or self.search_init_k < 1 or self.search_time_s <= 0:
            raise ValueError("search_steps must be >= 0, search_init_k >= 1 and search_time_s > 0")
        if not self.use_encoder and self.search_steps == 0 and self.search_init_k == 1:
            raise ValueError("without an encoder the search needs steps or several random starts")
        if not 0.0 <= self.score_weight <= 1.0:
            raise ValueError(f"score_weight must be in [0, 1], got {self.score_weight}")
        if not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {self.top_fraction}")
        if self.dim % 16 or self.d_dim % 16:
            raise ValueError("dim and d_dim must be multiples of 16 (16 channels per attention head)")




class TransGan(AnomalyModel):
    name = "transgan"
    description = "TransGAN + AnoGAN latent search, encoder-initialised: score = search residual + feature distance"
    Config = TransGanConfig
    main_loss = "rec"

    def __init__(self, config: TransGanConfig) -> None:
        super().__init__(config)
        c = config
        self.generator = Generator(c.image_size, c.channels, c.nz, c.dim, c.depth)
        self.discriminator = Discriminator(c.image_size, c.channels, c.d_dim, c.d_depth)
        self.encoder = LatentEncoder(c.image_size, c.channels, c.nz, c.encoder_width)
        self.encoder.apply(weights_init)
        # means of (residual, feature distance) on held-out good images, set by calibrate()
        register_score_scale(self)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        ge = itertools.chain(self.generator.parameters(), self.encoder.parameters())
        self.optimizers = {"generator_encoder": c.adam(ge), "discriminator": c.adam(self.discriminator.parameters())}
        return self.optimizers

    def training_step(self, batch: Tensor, ctx: StepContext) -> dict[str, float]:
        """One discriminator update, then one update of generator and encoder together."""
        c = self.config
        z = torch.randn(batch.shape[0], c.nz, device=batch.device)
        with ctx.autocast():
            x_fake = self.generator(z)
            real_logit, _ = self.discriminator(batch)
            fake_logit, _ = self.discriminator(x_fake.detach())
            d_loss = discriminator_loss(real_logit.float(), fake_logit.float())
        ctx.optimise(d_loss, self.optimizers["discriminator"])

        with frozen(self.discriminator), ctx.autocast():
            fake_logit, _ = self.discriminator(x_fake)
            g_adv = generator_loss(fake_logit.float())
            frozen_generator = contextlib.nullcontext() if c.rec_trains_generator else frozen(self.generator)
            with frozen_generator:
                x_rec = self.generator(self.encoder(batch))
            z_cycle = self.encoder(x_fake.detach())
            e = encoder_losses(batch, x_rec.float(), z, z_cycle.float())
            loss = g_adv + c.w_rec * e["rec"] + c.w_ziz * e["ziz"]
        ctx.optimise(loss, self.optimizers["generator_encoder"])
        return {"d_loss": d_loss.item(), "g_adv": g_adv.item(), "rec": e["rec"].item(), "ziz": e["ziz"].item(), "ge_loss": loss.item()}

    # --- inference ------------------------------------------------------------------------
    def _initial_z(self, x: Tensor) -> Tensor:
        """E(x), or the best of ``search_init_k`` fixed random draws (seeded: scores are repeatable)."""
        c = self.config
        if c.use_encoder:
            return self.encoder(x)
        b = x.shape[0]
        draws = torch.randn(b * c.search_init_k, c.nz, generator=torch.Generator().manual_seed(0)).to(x.device)
        x_rep = x.repeat_interleave(c.search_init_k, dim=0)
        _, f = self.discriminator(x_rep)
        x_hat = self.generator(draws)
        _, f_hat = self.discriminator(x_hat)
        loss = search_loss(x_rep, x_hat, f, f_hat, c.search_lambda).view(b, c.search_init_k)
        best = loss.argmin(dim=1) + torch.arange(b, device=x.device) * c.search_init_k
        return draws[best]

    def search(self, x: Tensor) -> tuple[Tensor, int]:
        """z* for every image of the batch together; returns (z*, steps taken).

        Scoring runs under no_grad/inference mode, so gradients are switched back on here, for
        z only (``autograd.grad`` of z, never of the weights, and no flag of the networks switched:
        several threads may score the model at once).
        """
        c = self.config
        z0 = self._initial_z(x)
        if c.search_steps == 0:
            return z0, 0
        started = time.perf_counter()
        with torch.inference_mode(False), torch.enable_grad():
            x = x.clone()  # tensors made under inference mode cannot take part in autograd
            features = self.discriminator(x)[1].detach()  # a constant of the search

            def objective(z: Tensor) -> Tensor:  # the AnoGAN loss of each image
                x_hat = self.generator(z)
                _, hat_features = self.discriminator(x_hat)
                return search_loss(x, x_hat, features, hat_features, c.search_lambda)

            z = z0.clone().requires_grad_(True)
            best_z, best_loss = z0.clone(), torch.full((x.shape[0],), float("inf"), device=x.device)
            optimiser = torch.optim.Adam([z], lr=c.search_lr)
            steps = 0
            while True:
                loss = objective(z)
                with torch.no_grad():  # keep each image's best z so far
                    better = loss < best_loss
                    best_loss = torch.where(better, loss, best_loss)
                    best_z[better] = z[better]
                if steps == c.search_steps or time.perf_counter() - started >= c.search_time_s:
                    break
                # images are independent: the sum gives each its own gradient
                z.grad = torch.autograd.grad(loss.sum(), z)[0]
                optimiser.step()
                steps += 1
        return best_z.detach(), steps

    def _terms(self, batch: Tensor, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(residual term, feature term, anomaly map, reconstruction) of each image."""
        x_hat = self.generator(z)
        _, features = self.discriminator(batch)
        _, hat_features = self.discriminator(x_hat)
        feature = (features - hat_features).abs().flatten(1).mean(dim=1)
        amap = self.residual_map(batch, x_hat, sigma=self.config.image_size / 32)
        return top_fraction_mean(amap, self.config.top_fraction), feature, amap, x_hat

    def _searched_terms(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``_terms`` at the z the search finds for each image."""
        z, _ = self.search(batch)
        return self._terms(batch, z)

    def score(self, batch: Tensor, reconstruct: bool = True) -> ScoreOutput:
        """The score is made from the reconstruction: it is returned whatever ``reconstruct`` says."""
        residual, feature, amap, x_hat = self._searched_terms(batch)
        score = two_term_score(residual, feature, self.config.score_weight, self.score_scale)
        return ScoreOutput(image_score=score, anomaly_map=amap, reconstruction=x_hat)

    def calibrate(self, batches: Iterable[Tensor]) -> None:
        """Divide each score term by its mean on held-out good images (searched like any image)."""
        scale = calibrated_scale(self._searched_terms(batch)[:2] for batch in batches)
        if scale is not None:
            self.score_scale.copy_(scale)

    def sample_reconstructions(self, batch: Tensor) -> Tensor:
        """Training previews skip the search: G(E(x)) (or G of the best random start) is enough to watch."""
        return self.generator(self._initial_z(batch))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` new images G(z), z ~ N(0, I), in [-1, 1] (eval mode; ``generator`` makes them repeatable)."""
        return sample_images(self, n, generator)
