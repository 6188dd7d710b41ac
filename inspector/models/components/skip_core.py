"""Skip-GANomaly (Akçay, Atapour-Abarghouei & Breckon, IJCNN 2019): the networks, loss weights and
adversarial training that Skip-GANomaly and its inpainting and segmenting variants share.

The generator is a U-Net (as pix2pix, which the reference code uses): 4×4 stride-2
convolutions down to 1×1, transposed convolutions back up, and each encoder level
concatenated onto the decoder level of the same size, so fine detail need not pass
through the bottleneck. The discriminator is GANomaly's DCGAN one; its last conv
block's features feed the adversarial and latent losses and the latent score.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from inspector.models.base import AnomalyModel, bounded, ModelConfig, ScoreOutput, StepContext
from inspector.models.components.adversarial import discriminator_step, frozen
from inspector.models.components.dcgan import DCDiscriminator, weights_init
from inspector.models.components.two_term import calibrated_scale, register_score_scale, two_term_score


class UNetGenerator(nn.Module):
    """x (in_channels, S, S) → x̂ (out_channels, S, S) in [-1, 1] through a 1×1 bottleneck with skips.

    ``in_channels`` may differ from ``out_channels`` (the inpainting variant adds a mask channel).
    Channels double per level from ``width`` up to ``width · max_mult``.
    """

    def __init__(self, image_size: int, in_channels: int, out_channels: int, width: int, max_mult: int = 8) -> None:
        super().__init__()
        depth = image_size.bit_length() - 1  # 64 px → 6 levels: 32, 16, 8, 4, 2, 1
        chans = [width * min(2**i, max_mult) for i in range(depth)]
        downs: list[nn.Module] = [nn.Conv2d(in_channels, chans[0], 4, 2, 1, bias=False)]
        for i in range(1, depth):
            innermost = i == depth - 1  # no norm on a 1×1 map, as pix2pix
            layers = [nn.LeakyReLU(0.2, True), nn.Conv2d(chans[i - 1], chans[i], 4, 2, 1, bias=False)]
            downs.append(nn.Sequential(*layers) if innermost else nn.Sequential(*layers, nn.BatchNorm2d(chans[i])))
        ups: list[nn.Module] = []
        for i in range(depth - 1, 0, -1):  # decoder level i produces the size of encoder level i-1
            c_in = chans[i] if i == depth - 1 else 2 * chans[i]
            ups.append(nn.Sequential(nn.ReLU(True), nn.ConvTranspose2d(c_in, chans[i - 1], 4, 2, 1, bias=False), nn.BatchNorm2d(chans[i - 1])))
        ups.append(nn.Sequential(nn.ReLU(True), nn.ConvTranspose2d(2 * chans[0], out_channels, 4, 2, 1), nn.Tanh()))
        self.downs = nn.ModuleList(downs)
        self.ups = nn.ModuleList(ups)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        x = self.ups[0](skips.pop())
        for up in self.ups[1:]:
            x = up(torch.cat([x, skips.pop()], dim=1))
        return x




def generator_loss(
    real_features: Tensor,
    fake_features: Tensor,
    x: Tensor,
    x_hat: Tensor,
    w_adv: float,
    w_con: float,
    w_lat: float,
    pixel_weight: Tensor | None = None,
) -> dict[str, Tensor]:
    """Weighted sum of the three terms.

    adversarial: the batch-mean discriminator features of x̂ match those of x (feature matching,
    Salimans et al. 2016) — a distribution-level signal; latent: the same features matched image
    by image — x̂ must look like *its* x to the discriminator. ``pixel_weight`` (B, 1, H, W)
    weights the L1 term (the inpainting variant weights masked pixels more).
    """
    real_features = real_features.detach()
    adv = F.mse_loss(fake_features.mean(dim=0), real_features.mean(dim=0))
    lat = F.mse_loss(fake_features, real_features)
    error = (x_hat - x).abs()
    if pixel_weight is None:
        con = error.mean()
    else:
        con = (error * pixel_weight).mean() / pixel_weight.mean()
    return {"g_adv": adv, "g_con": con, "g_lat": lat, "g_loss": w_adv * adv + w_con * con + w_lat * lat}


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
class ScoredSkipConfig(SkipGanomalyNetConfig):
    """The variants scored by reconstruction and latent distance (``ScoredSkipGanomaly``)."""

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
        self.discriminator = DCDiscriminator(c.image_size, c.channels, c.width)
        self.generator.apply(weights_init)
        self.discriminator.apply(weights_init)

    def build_generator(self) -> nn.Module:
        c = self.config
        return UNetGenerator(c.image_size, c.channels, c.channels, c.width, c.max_mult)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        self.optimizers = {"generator": c.adam(self.generator.parameters()), "discriminator": c.adam(self.discriminator.parameters())}
        return self.optimizers

    # --- training ---------------------------------------------------------------------------
    def adversarial_step(
        self, x: Tensor, generator_input: Tensor, ctx: StepContext, pixel_weight: Tensor | None = None
    ) -> dict[str, float]:
        """One generator update then one discriminator update, towards x from ``generator_input``."""
        c = self.config
        with ctx.autocast():
            x_hat = self.generator(generator_input)
            with torch.no_grad():
                _, real_features = self.discriminator(x)
            with frozen(self.discriminator):
                _, fake_features = self.discriminator(x_hat)
                g = generator_loss(real_features, fake_features, x, x_hat, c.w_adv, c.w_con, c.w_lat, pixel_weight)
        ctx.optimise(g["g_loss"], self.optimizers["generator"])

        d_loss = discriminator_step(self.discriminator, x, x_hat, self.optimizers["discriminator"], ctx)
        return {k: v.item() for k, v in g.items()} | {"d_loss": d_loss}

    def training_step(self, batch: Tensor, ctx: StepContext) -> dict[str, float]:
        return self.adversarial_step(batch, batch, ctx)


class ScoredSkipGanomaly(SkipGanomalyNetworks):
    """Scored by a reconstruction term and the latent (discriminator-feature) distance, each
    calibrated (``two_term``); a variant says how it reconstructs in ``_terms``."""

    def __init__(self, config: ScoredSkipConfig) -> None:
        super().__init__(config)
        # per-term means (reconstruction, latent) on held-out good images
        register_score_scale(self)

    def latent_distance(self, x: Tensor, x_hat: Tensor) -> Tensor:
        """Mean squared difference of the discriminator's features of x and x̂, per image."""
        _, real = self.discriminator(x)
        _, fake = self.discriminator(x_hat)
        return (real.float() - fake.float()).pow(2).flatten(1).mean(dim=1)

    def _terms(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(reconstruction term, latent distance, anomaly map, reconstruction) of each image."""
        raise NotImplementedError

    def score(self, batch: Tensor, reconstruct: bool = True) -> ScoreOutput:
        """The score is made from the reconstruction: it is returned whatever ``reconstruct`` says."""
        recon, latent, amap, x_hat = self._terms(batch)
        score = two_term_score(recon, latent, self.config.score_weight, self.score_scale)
        return ScoreOutput(image_score=score, anomaly_map=amap, reconstruction=x_hat)

    def calibrate(self, batches: Iterable[Tensor]) -> None:
        scale = calibrated_scale(self._terms(batch)[:2] for batch in batches)
        if scale is not None:
            self.score_scale.copy_(scale)
