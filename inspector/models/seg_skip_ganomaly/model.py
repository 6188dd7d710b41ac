"""Segmenting Skip-GANomaly as an ``AnomalyModel``.

An MSc project on car damage detection with GANomaly and Skip-GANomaly (City, University of
London, 2022) trains Skip-GANomaly's generator on synthetic anomalies (masked regions) so that it
projects any input toward the clean distribution. Here the synthetic anomalies are painted
defects (``inspector.data.synthetic``: cracks, dark regions, scratches, blobs, stains,
cut-and-paste): the generator learns to *remove* them (input = painted image, target = the
clean one, Skip-GANomaly's adversarial + contextual + latent losses), and a head learns to
segment them in the image, as DRAEM's discriminative network (Zavrtanik et al., ICCV 2021): a
decoder on a frozen ImageNet MobileNetV2 (transfer learning, as a master's thesis on patch-wise
and transfer-learning GANomaly does for GANomaly's encoder) when its weights are on the machine,
else a small U-Net from scratch. The head's probability map is the anomaly map: unlike a raw
residual it has learnt to ignore texture the generator cannot reproduce (e.g. the grain of a
polycrystalline solar cell); the generator's restoration is the reconstruction
the app shows. With the ImageNet head, a Gaussian of the good training images' trunk features per
position (PaDiM) joins the score: it ranks real defects more steadily than a head trained on
painted ones (ELPV: 0.862 / 0.851 for two seeds, against 0.840 / 0.788 for the head alone).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from inspector.data.synthetic import DEFECT_KINDS, paint_defect
from inspector.models.base import bounded, ScoreOutput, StepContext, top_fraction_mean
from inspector.models.components.feature_gaussian import PositionGaussian
from inspector.models.components.mobilenet import MobileNetV2
from inspector.models.components.pretrained import load_weights, pretrained_source
from inspector.models.components.skip_core import SkipGanomalyNetConfig, SkipGanomalyNetworks
from inspector.models.seg_skip_ganomaly.loss import segmentation_loss
from inspector.models.seg_skip_ganomaly.torch_model import ImageNetSegmentationHead, SegmentationHead


@dataclass
class SegSkipGanomalyConfig(SkipGanomalyNetConfig):
    image_size: int = 128  # a one-pixel crack in a 300 px image is gone at 64 px
    width: int = bounded(16, 1, 128)  # the generator only restores; the head does the finding (4× cheaper than 32 at 128 px)
    defect_rate: float = bounded(0.5, 0.0, 1.0)  # share of training images that get painted defects
    defect_kinds: tuple[str, ...] = DEFECT_KINDS  # the kinds painted (inspector.data.synthetic), at random
    max_defects: int = bounded(2, 1, 32)  # a painted image gets 1 to max_defects defects
    gain_jitter: float = bounded(0.2, 0.0, 1.0)  # training images are brightened or darkened by up to this share
    pretrained: bool = True  # the head reads a frozen ImageNet MobileNetV2 when its weights are found
    pretrained_path: str = ""  # a torchvision mobilenet_v2 .pth; empty = torchvision's cache, then the package
    # what the head was built on, filled in by the model: "imagenet:<file>" (MobileNetV2 head) or
    # "scratch: <why>" (the U-Net head). A saved model carries it and is rebuilt the same way.
    pretrained_source: str = ""
    head_width: int = bounded(16, 1, 128)  # channels of the head's top level (U-Net: then ×2, ×4, ×8; ImageNet decoder: up to ×4)
    head_lr: float = bounded(1e-3, 1e-08, 1.0)  # Adam learning rate of the head at the start of the run
    head_schedule: str = "cosine"  # "cosine": the head's rate falls to 0 over the run; "constant"
    top_fraction: float = bounded(0.25, 0.0, 1.0)  # the head's image score = mean of this top fraction of its probability map
    # share of the score from a Gaussian of good parts' ImageNet features per position (PaDiM); the
    # rest is the head's. Needs the ImageNet head; 0 = the head alone. 0.8 and 0.9 tied on ELPV half a
    feature_weight: float = bounded(0.8, 0.0, 1.0)
    feature_grid: int = bounded(16, 1, 64)  # the Gaussian's positions per side (16 × 16 × 120 features: 15 MB in the model file)
    # the Gaussian also fits one view of each training image cropped by up to this share of its side
    # and resized back: without it, good ELPV cells framed 5 % tighter were 83 % false alarms (0.1: 5 %)
    feature_jitter: float = bounded(0.1, 0.0, 0.5)

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.gain_jitter < 1.0:
            raise ValueError(f"gain_jitter must be in [0, 1), got {self.gain_jitter}")
        if not 0.0 < self.defect_rate < 1.0:
            raise ValueError(f"defect_rate must be in (0, 1), got {self.defect_rate}")
        if self.head_schedule not in ("cosine", "constant"):
            raise ValueError(f"head_schedule must be 'cosine' or 'constant', got {self.head_schedule!r}")
        if self.head_width < 1 or self.head_lr <= 0 or self.max_defects < 1:
            raise ValueError("head_width, head_lr and max_defects must be positive")
        if not 0.0 <= self.feature_weight <= 1.0:
            raise ValueError(f"feature_weight must be in [0, 1], got {self.feature_weight}")
        if self.feature_grid < 1:
            raise ValueError(f"feature_grid must be positive, got {self.feature_grid}")
        if not 0.0 <= self.feature_jitter < 0.5:
            raise ValueError(f"feature_jitter must be in [0, 0.5), got {self.feature_jitter}")
        unknown = set(self.defect_kinds) - set(DEFECT_KINDS)
        if not self.defect_kinds or unknown:
            raise ValueError(f"defect_kinds must be some of {', '.join(DEFECT_KINDS)}; got {list(self.defect_kinds)}")

    @classmethod
    def from_dict(cls, values: dict) -> "SegSkipGanomalyConfig":
        # model files written by inspector 0.1.0 carry Skip-GANomaly's score_weight, which this method never used
        return super().from_dict({k: v for k, v in values.items() if k != "score_weight"})


def paint_batch(
    batch: Tensor, rate: float, rng: np.random.Generator, kinds: Sequence[str] = DEFECT_KINDS, max_defects: int = 1
) -> tuple[Tensor, Tensor]:
    """Paint 1 to ``max_defects`` random defects of ``kinds`` on about ``rate`` of the images of a
    [-1, 1] batch. Returns (painted batch, masks (B, 1, H, W) in {0, 1}: exactly the changed pixels);
    unpainted images are unchanged.
    """
    painted, masks = batch.clone(), torch.zeros_like(batch[:, :1])
    pixels = ((batch.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    for i in np.flatnonzero(rng.random(len(batch)) < rate):
        original = pixels[i].permute(1, 2, 0).numpy()
        image = original[:, :, 0] if original.shape[2] == 1 else original
        for _ in range(int(rng.integers(1, max_defects + 1))):
            image, _ = paint_defect(image, rng, kinds[int(rng.integers(len(kinds)))])
        image = torch.from_numpy(image.reshape(original.shape)).permute(2, 0, 1).to(batch.device)
        changed = (image != pixels[i].to(batch.device)).any(dim=0)
        masks[i, 0] = changed.to(batch.dtype)
        painted[i] = torch.where(changed, image.to(batch.dtype) / 127.5 - 1, batch[i])  # untouched pixels stay exact
    return painted, masks


def relight(batch: Tensor, jitter: float, rng: np.random.Generator) -> Tensor:
    """Each image's brightness times a random gain in [1 - jitter, 1 + jitter], clipped to [-1, 1]:
    parts are lit differently, and the head must not take a darker part for a defective one."""
    if jitter <= 0:
        return batch
    gain = torch.from_numpy(rng.uniform(1 - jitter, 1 + jitter, len(batch))).to(batch.device, batch.dtype)
    return ((batch + 1) * gain.view(-1, 1, 1, 1) - 1).clamp(-1, 1)


def flip_each(batch: Tensor, rng: np.random.Generator) -> Tensor:
    """Each image flipped left-right and/or up-down at random: four times the good views for the head."""
    out = batch.clone()
    for i, (h, v) in enumerate(rng.random((len(batch), 2)) < 0.5):
        dims = [d for d, flip in ((-1, h), (-2, v)) if flip]
        if dims:
            out[i] = batch[i].flip(dims)
    return out


def random_crops(batch: Tensor, jitter: float, generator: torch.Generator) -> Tensor:
    """Each image cropped to a random square window, its side 1 - ``jitter`` to 1 of the image's,
    at a random place, and resized back: the same part framed a little differently."""
    n, _, h, w = batch.shape
    out = torch.empty_like(batch)
    for i, (u, x, y) in enumerate(torch.rand(n, 3, generator=generator).tolist()):
        ch, cw = max(1, round(h * (1 - jitter * u))), max(1, round(w * (1 - jitter * u)))
        top, left = round(y * (h - ch)), round(x * (w - cw))
        window = batch[i : i + 1, :, top : top + ch, left : left + cw]
        out[i] = F.interpolate(window, size=(h, w), mode="bilinear", align_corners=False)[0]
    return out


def _nhwc(batch: Tensor) -> Tensor:
    """Channels-last (NHWC) input for the head: its training and scoring ran ×1.2 faster on a CPU."""
    return batch.contiguous(memory_format=torch.channels_last)


def _drop_unused_score_scale(state: dict, prefix: str, *_) -> None:
    """Model files written by inspector 0.1.0 carry Skip-GANomaly's score scales, which this method never used."""
    state.pop(prefix + "score_scale", None)


def build_head(c: SegSkipGanomalyConfig) -> torch.nn.Module:
    """The ImageNet head when MobileNetV2 weights are found, else the U-Net from scratch with a
    warning; records which in ``c.pretrained_source``. A config that already says (a saved model)
    is rebuilt the same way without looking for weights: they come from the model file."""
    fresh = not c.pretrained_source
    if fresh:
        fallback = "the head is a U-Net trained from SCRATCH, which finds fewer real defects (see the method's README)"
        c.pretrained_source = pretrained_source("mobilenet_v2", "MobileNetV2", c.pretrained, c.pretrained_path, "seg-skip-ganomaly", fallback)
    if not c.pretrained_source.startswith("imagenet:"):
        return SegmentationHead(c.channels, c.head_width)
    head = ImageNetSegmentationHead(c.channels, c.head_width)
    if fresh:
        trunk = MobileNetV2()
        load_weights(trunk, c.pretrained_source.removeprefix("imagenet:"), "MobileNetV2", ignore=("classifier.",))
        head.trunk.load_state_dict(trunk.features[: len(head.trunk)].state_dict())
    return head


class SegSkipGanomaly(SkipGanomalyNetworks):
    """With the ImageNet head, the score mixes two terms once ``fit_normal`` has seen the good
    training images: a Gaussian of their trunk features per position (``feature_weight``) and the
    head's probability map, each in units of held-out good parts' spread (median and interquartile
    range, from ``calibrate``). Otherwise the score is the head's alone, as before the Gaussian."""

    name = "seg-skip-ganomaly"
    description = (
        "Skip-GANomaly trained to remove painted defects, a head on ImageNet features that segments them (DRAEM-style) "
        "and a Gaussian of good parts' features (PaDiM)"
    )
    Config = SegSkipGanomalyConfig
    train_defaults = {"epochs": 24, "batch_size": 16}  # the head needs steps (ELPV prototype: 0.83 → 0.85 from 12 to 24 epochs)

    def __init__(self, config: SegSkipGanomalyConfig) -> None:
        super().__init__(config)
        self.head = build_head(config).to(memory_format=torch.channels_last)
        self.gaussian = self._build_gaussian()
        # median and interquartile range of held-out good parts' image scores: [Gaussian, head]
        self.register_buffer("score_stats", torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
        self._register_load_state_dict_pre_hook(_drop_unused_score_scale)
        self._register_load_state_dict_pre_hook(self._match_the_file)

    @property
    def pretrained_source(self) -> str:
        """``imagenet:<file>`` or ``scratch: <why>`` — also in the model file's config."""
        return self.config.pretrained_source

    @property
    def map_max(self) -> float | None:  # type: ignore[override]
        """1 while the map is the head's probability; the mixed map is unbounded."""
        return None if self._mixes() else 1.0

    def _build_gaussian(self) -> PositionGaussian | None:
        c = self.config
        if c.feature_weight == 0 or not isinstance(self.head, ImageNetSegmentationHead):
            return None
        return PositionGaussian(ImageNetSegmentationHead.FEATURE_CHANNELS, min(c.feature_grid, c.image_size // 4))

    def _mixes(self) -> bool:
        return self.gaussian is not None and self.gaussian.fitted

    def _match_the_file(self, state: dict, prefix: str, *_) -> None:
        """The weights decide the head: a file written before the ImageNet head (or fine-tuned where
        the weights were missing) carries the U-Net, and is rebuilt with it to load. A file written
        before the feature Gaussian gets an unfitted one: it scores with its head alone, as it did."""
        imagenet = prefix + "head.trunk.0.0.weight" in state
        if imagenet != isinstance(self.head, ImageNetSegmentationHead):
            self.config.pretrained_source = f"{'imagenet' if imagenet else 'scratch'}: the head of a model file"
            device = next(self.head.parameters()).device
            self.head = build_head(self.config).to(device, memory_format=torch.channels_last)
            self.gaussian = self._build_gaussian()
            if self.gaussian is not None:
                self.gaussian.to(device)
        mine = {f"gaussian.{k}": v for k, v in self.gaussian.state_dict().items()} if self.gaussian is not None else {}
        for key in [k for k in state if k.startswith(prefix + "gaussian.") and k.removeprefix(prefix) not in mine]:
            del state[key]  # scored without the Gaussian (feature_weight = 0)
        for key, value in (mine | {"score_stats": self.score_stats}).items():
            state.setdefault(prefix + key, value)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        super().configure_optimizers()
        trainable = [p for p in self.head.parameters() if p.requires_grad]  # not a frozen ImageNet trunk
        self.optimizers["head"] = torch.optim.Adam(trainable, lr=self.config.head_lr)
        return self.optimizers

    def training_step(self, batch: Tensor, ctx: StepContext) -> dict[str, float]:
        clean, painted, mask = self.painted_views(batch)
        losses = self.adversarial_step(clean, painted, ctx)  # learn to restore the clean image
        return losses | {"seg_loss": self.head_step(painted, mask, ctx)}

    def painted_views(self, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(clean views, the same with painted defects, defect masks): each image re-lit and flipped
        at random, then defects painted on ``defect_rate`` of them."""
        c = self.config
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))  # follows the trainer's seed
        clean = flip_each(relight(batch, c.gain_jitter, rng), rng)
        painted, mask = paint_batch(clean, c.defect_rate, rng, c.defect_kinds, c.max_defects)
        return clean, painted, mask

    def head_step(self, painted: Tensor, mask: Tensor, ctx: StepContext) -> float:
        """One update of the head on painted images against their masks; returns its loss."""
        c = self.config
        if c.head_schedule == "cosine":
            ctx.cosine_lr(self.optimizers["head"], c.head_lr)
        with ctx.autocast():
            seg = segmentation_loss(self.head(_nhwc(painted)), mask)
        ctx.optimise(seg, self.optimizers["head"])
        return seg.item()

    def defect_map(self, batch: Tensor) -> Tensor:
        """The head's defect probability per pixel, (B, H, W)."""
        return self.head(_nhwc(batch)).squeeze(1).float().sigmoid()

    def fit_normal(self, batches: Iterable[Tensor]) -> None:
        """The Gaussian of the good training images' trunk features (one pass, nothing trained),
        and of one view of each cropped by up to ``feature_jitter`` (the same crops every time)."""
        if self.gaussian is None:
            return
        jitter, generator = self.config.feature_jitter, torch.Generator().manual_seed(0)

        def views() -> Iterator[Tensor]:
            for batch in batches:
                yield batch
                if jitter > 0:
                    yield random_crops(batch, jitter, generator)

        self.gaussian.fit(self.head.features(_nhwc(v)) for v in views())

    def _terms(self, batch: Tensor) -> tuple[Tensor, Tensor]:
        """The mixed score's two terms, [Gaussian, head]: as maps (B, 2, H, W) — the feature distance
        (bilinear from the grid) and the head's log-probability — and as image scores (B, 2) — the
        largest distance and the log of the head's top-fraction mean probability."""
        logits, features = self.head.run(_nhwc(batch))
        logits = logits.squeeze(1).float()
        distance = self.gaussian(features)
        head_score = top_fraction_mean(logits.sigmoid(), self.config.top_fraction).clamp_min(1e-12).log()
        images = torch.stack([distance.flatten(1).amax(dim=1), head_score], dim=1)
        distance_map = F.interpolate(distance[:, None], size=logits.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([distance_map, F.logsigmoid(logits)[:, None]], dim=1), images

    def score(self, batch: Tensor, reconstruct: bool = True) -> ScoreOutput:
        """The generator's restoration is shown, never scored: it runs only when asked for (about
        a third of a 64 px image's time)."""
        reconstruction = self.generator(batch) if reconstruct else None
        if not self._mixes():
            amap = self.defect_map(batch)
            return ScoreOutput(top_fraction_mean(amap, self.config.top_fraction), amap, reconstruction)
        maps, images = self._terms(batch)
        w = self.config.feature_weight
        weight = images.new_tensor([w, 1 - w]) / self.score_stats[:, 1]  # per unit of good parts' spread
        median = self.score_stats[:, 0]
        image_score = ((images - median) * weight).sum(dim=1)
        # each pixel as the score it alone would give, floored smoothly at a typical good part's
        amap = F.softplus(((maps - median.view(1, 2, 1, 1)) * weight.view(1, 2, 1, 1)).sum(dim=1))
        return ScoreOutput(image_score, amap, reconstruction)

    def calibrate(self, batches: Iterable[Tensor]) -> None:
        """The two terms' median and interquartile range on held-out good parts (nothing to do for
        the head alone: its score is a mean probability, on one scale for every part)."""
        if not self._mixes():
            return
        scores = torch.cat([self._terms(b)[1] for b in batches])
        q = torch.quantile(scores, scores.new_tensor([0.25, 0.5, 0.75]), dim=0)
        self.score_stats.copy_(torch.stack([q[1], (q[2] - q[0]).clamp_min(1e-6)], dim=1))
