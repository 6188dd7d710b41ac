"""Convolutional autoencoder as an ``AnomalyModel``: the yardstick every GAN method must beat."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from inspector.models.autoencoder.loss import reconstruction_loss
from inspector.models.autoencoder.torch_model import AutoEncoder
from inspector.models.base import AnomalyModel, bounded, ModelConfig, ScoreOutput, StepContext, top_fraction_mean
from inspector.models.components.dcgan import weights_init


@dataclass
class AutoencoderConfig(ModelConfig):
    nz: int = bounded(100, 1, 1024)  # bottleneck size: small enough that a defect cannot be copied through it
    width: int = bounded(32, 1, 128)  # first conv's channels
    w_ssim: float = bounded(0.0, 0.0, 1e6)  # > 0 adds (1 - SSIM) to the L1 loss
    top_fraction: float = bounded(0.01, 0.0, 1.0)  # image score = mean of this top fraction of the smoothed residual map
    beta1: float = 0.9  # plain Adam: there is no adversary to keep stable

    def validate(self) -> None:
        super().validate()
        if self.nz < 1 or self.width < 1:
            raise ValueError("nz and width must be positive")
        if not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {self.top_fraction}")



class Autoencoder(AnomalyModel):
    name = "autoencoder"
    description = "Convolutional autoencoder (baseline): score = top 1 % of the smoothed residual"
    Config = AutoencoderConfig
    main_loss = "loss"

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__(config)
        c = config
        self.network = AutoEncoder(c.image_size, c.channels, c.nz, c.width)
        self.network.apply(weights_init)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        self.optimizers = {"autoencoder": self.config.adam(self.network.parameters())}
        return self.optimizers

    def training_step(self, batch: Tensor, ctx: StepContext) -> dict[str, float]:
        with ctx.autocast():
            losses = reconstruction_loss(batch, self.network(batch), self.config.w_ssim)
        ctx.optimise(losses["loss"], self.optimizers["autoencoder"])
        return {k: v.item() for k, v in losses.items()}

    def score(self, batch: Tensor, reconstruct: bool = True) -> ScoreOutput:
        """The score is made from the reconstruction: it is returned whatever ``reconstruct`` says."""
        x_hat = self.network(batch)
        amap = self.residual_map(batch, x_hat, sigma=self.config.image_size / 32)
        return ScoreOutput(top_fraction_mean(amap, self.config.top_fraction), amap, x_hat)
