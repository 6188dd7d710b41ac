"""The interface every method shares, so the trainer, predictor and GUI need no method-specific code.

A method is an ``AnomalyModel`` subclass with a ``Config`` dataclass of hyper-parameters.
Training is one call per batch (``training_step``), which runs the method's own optimiser
updates through a ``StepContext`` (so mixed precision and gradient scaling live in one place).
Scoring (``score``) runs in eval mode and returns an image score, a pixel anomaly map and a
reconstruction for every image in the batch (the reconstruction only when asked for, where it is
work of its own). ``score`` leaves the model as it was: live mode's inference workers score one
model from several threads at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from inspector.text import shown


TEXT_MAX = 4096  # characters of any text option (paths, modes)


def bounded(default: Any, low: float, high: float) -> Any:
    """A numeric option's default and its allowed range ``low..high`` (inclusive), checked by
    ``ModelConfig.validate`` for every method: a model file's hyper-parameters build the network,
    so no size may be unbounded (a 15 MB file once asked for 7.5 GB)."""
    return field(default=default, metadata={"range": (low, high)})


def option_range(cls: type, name: str) -> tuple[float, float] | None:
    """The range of option ``name``: the nearest class in the MRO that declares one, so a method
    that only changes a default (``image_size: int = 128``) keeps its parent's bounds."""
    for klass in cls.__mro__:
        f = klass.__dict__.get("__dataclass_fields__", {}).get(name)
        if f is not None and "range" in f.metadata:
            return f.metadata["range"]
    return None




def check_option(cls: type, name: str, kind: type, value: Any) -> Any:
    """``value`` as option ``name`` of kind ``kind`` (the default's type), or one-line ValueError
    naming the option and what is allowed. Ints are whole numbers (not bools, not floats); floats
    take ints and must be finite; both must lie in the option's range."""
    bounds = option_range(cls, name)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"param '{name}' must be true or false, got {shown(value)}")
        return value
    if kind is int or kind is float:
        low, high = bounds if bounds is not None else (-math.inf, math.inf)
        span = f" in {low:g}..{high:g}" if bounds is not None else ""
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"param '{name}' must be a whole number{span}, got {shown(value)}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"param '{name}' must be a finite number{span}, got {shown(value)}")
        return float(value)
    if kind is str:
        if not isinstance(value, str) or len(value) > TEXT_MAX:
            raise ValueError(f"param '{name}' must be text of at most {TEXT_MAX} characters, got {shown(value)}")
        return value
    if kind is tuple:
        if not isinstance(value, (list, tuple)) or len(value) > 64 or not all(isinstance(v, str) and len(v) <= 64 for v in value):
            raise ValueError(f"param '{name}' must be a list of names, got {shown(value)}")
        return tuple(value)
    raise TypeError(f"{cls.__name__}.{name}: options of type {kind.__name__} are not supported")


@dataclass
class ModelConfig:
    """Hyper-parameters shared by every method; methods subclass it and add their own.

    Every int and float option has a range (``bounded``); ``validate`` checks each option's type
    and range in one place before the method's own checks, so training (``create_model``) and
    loading a model file refuse the same values with the same one-line message."""

    image_size: int = bounded(64, 32, 256)
    channels: int = bounded(1, 1, 3)
    lr: float = bounded(2e-4, 1e-8, 1.0)
    beta1: float = bounded(0.5, 0.0, 0.9999)
    beta2: float = bounded(0.999, 0.0, 0.9999)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            setattr(self, f.name, check_option(type(self), f.name, type(default), getattr(self, f.name)))
        if not 32 <= self.image_size <= 256 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be a power of two between 32 and 256, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {self.channels}")

    def adam(self, params: Iterable[Tensor]) -> torch.optim.Adam:
        """Adam with this config's learning rate and betas: what every method's parts train with."""
        return torch.optim.Adam(params, lr=self.lr, betas=(self.beta1, self.beta2))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        """A validated config; unknown options, wrong types and values out of range are a ValueError."""
        if not isinstance(values, dict):
            raise ValueError(f"{cls.__name__}: options must be a mapping, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            names = ", ".join(sorted(shown(k) if not isinstance(k, str) or len(k) > 60 else k for k in unknown)[:5])
            raise ValueError(f"unknown {cls.__name__} option(s): {names}")
        config = cls(**values)
        config.validate()
        return config


@dataclass
class ScoreOutput:
    """Per-batch scoring result, all on the model's device.

    image_score: (B,) higher = more anomalous
    anomaly_map: (B, H, W) at the model's input size, higher = more anomalous
    reconstruction: (B, C, H, W) in the model's input range [-1, 1]; None when ``score`` was not
        asked for it and the method could skip it
    """

    image_score: Tensor
    anomaly_map: Tensor
    reconstruction: Tensor | None


@dataclass
class StepContext:
    """What a training step needs from the trainer: autocast and (scaled) optimiser steps."""

    device: torch.device
    amp: bool = False
    scaler: torch.amp.GradScaler | None = None
    amp_dtype: torch.dtype = torch.float16  # bfloat16 on a CPU (no grad scaler: its range is float32's)
    step: int = 0  # steps done before this one, counted over the whole run (resumes included)
    total_steps: int = 0  # steps in the whole run; 0 when unknown (a step called by hand)
    generator: torch.Generator | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def cosine_lr(self, optimizer: torch.optim.Optimizer, base_lr: float) -> None:
        """Set the learning rate on a cosine from ``base_lr`` at the first step to 0 after the last.

        A function of the step alone, so a resumed run continues on the same curve; ``base_lr``
        when the run's length is unknown."""
        progress = min(self.step / self.total_steps, 1.0) if self.total_steps > 0 else 0.0
        for group in optimizer.param_groups:
            group["lr"] = base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))

    def optimise(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        """zero_grad → backward → step, through the grad scaler when AMP is on."""
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
        else:
            loss.backward()
            optimizer.step()


class AnomalyModel(nn.Module):
    """Base class of every method. Subclasses set ``name``, ``description`` and ``Config``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    #: the loss the trainer reports as "the" training loss (e.g. for tests and curves)
    main_loss: ClassVar[str] = "loss"
    #: epochs and batch size the CLI and the app's "Standard" preset use unless told otherwise
    train_defaults: ClassVar[dict[str, int]] = {"epochs": 15, "batch_size": 32}
    #: the largest value the anomaly map can take (1 for a probability map), or None if unbounded;
    #: the heat map's display scale never reaches past it, so a sure detection shows at full heat
    map_max: ClassVar[float | None] = None
    #: True for a method fitted by one pass over the good training images (``fit_normal``) with no
    #: gradient steps (PatchCore, PaDiM): the trainer runs that pass, with progress and cancel, as
    #: the whole training (one epoch whatever ``epochs`` says) and never calls ``training_step``
    fit_only: ClassVar[bool] = False
    #: False for a method whose training steps stay float32 where the trainer would use bfloat16
    #: (``TrainConfig.bf16``): where bf16 was not shown to keep the method's quality
    bf16: ClassVar[bool] = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    # --- training -------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Create the optimisers (called once by the trainer, after moving to the device)."""
        raise NotImplementedError

    def training_step(self, batch: Tensor, ctx: StepContext) -> dict[str, float]:
        """Update the networks on one batch of good images in [-1, 1]; return named losses."""
        raise NotImplementedError

    def on_epoch_end(self, epoch: int) -> None:
        """Hook for schedules; nothing by default."""

    # --- inference ------------------------------------------------------------------------
    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) an image of this size is resized to before scoring.

        Whole-image methods squash to the training size; patch methods may keep more pixels.
        """
        return self.config.image_size, self.config.image_size

    def score(self, batch: Tensor, reconstruct: bool = True) -> ScoreOutput:
        """Score a batch in [-1, 1]. Called under ``torch.no_grad`` with the model in eval mode,
        possibly from several threads at once: nothing in the model may change (no caches, no
        flags switched and back).

        ``reconstruct=False`` when nobody looks at the reconstruction (live mode): a method whose
        reconstruction is work apart from its score skips it (``reconstruction`` None); one whose
        score is made from it returns it anyway. Scores and maps are the same either way."""
        raise NotImplementedError

    def fit_normal(self, batches: Iterable[Tensor]) -> None:
        """Fit statistics of the good *training* images once the networks are trained (eval mode,
        no grad), e.g. a Gaussian of their features; called before ``calibrate``. Nothing by default."""

    def calibrate(self, batches: Iterable[Tensor]) -> None:
        """Fit score statistics on held-out good batches after training (eval mode, no grad).

        Methods whose score combines terms on different scales use this to put them on one
        scale from good images only, never from a test set. Nothing by default.
        """

    def sample_reconstructions(self, batch: Tensor) -> Tensor:
        """Reconstructions shown while training; the scoring path by default."""
        return self.score(batch).reconstruction

    # --- helpers shared by methods ---------------------------------------------------------
    @staticmethod
    def residual_map(x: Tensor, x_hat: Tensor, sigma: float = 2.0) -> Tensor:
        """Absolute residual averaged over channels, Gaussian-smoothed so one noisy pixel is not a defect."""
        residual = (x - x_hat).abs().mean(dim=1, keepdim=True)
        return gaussian_blur(residual, sigma).squeeze(1)

    def optimizer_state(self) -> dict[str, Any]:
        return {k: opt.state_dict() for k, opt in self.optimizers.items()}

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        for k, opt in self.optimizers.items():
            if k in state:
                opt.load_state_dict(state[k])


def top_fraction_mean(maps: Tensor, fraction: float = 0.01) -> Tensor:
    """Mean of the largest ``fraction`` of each (B, H, W) map's pixels: an image score that is
    robust to one hot pixel yet sensitive to a small defect."""
    flat = maps.flatten(1)
    k = max(1, int(flat.shape[1] * fraction))
    return flat.topk(k, dim=1).values.mean(dim=1)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of a (B, 1, H, W) tensor, reflect-padded."""
    if sigma <= 0:
        return x
    radius = max(1, int(round(3 * sigma)))
    coords = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    pad = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    if pad < radius:
        kernel = kernel[radius - pad : radius + pad + 1]
        kernel = kernel / kernel.sum()
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    return F.conv2d(x, kernel.view(1, 1, -1, 1))


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Score in eval mode (BatchNorm running stats!), restore the previous mode afterwards.

    A model already in eval mode (the predictor's always is) is left alone: setting the mode walks
    every module, twice, which cost ~6 ms a call for seg-skip-ganomaly, 1/8 of a live frame."""
    was_training = model.training
    if not was_training:
        yield model
        return
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
