"""Training for every method: device choice, AMP on CUDA, fixed seeds, progress events,
cancellation every step, a checkpoint each epoch with resume, then calibration on held-out
good images (threshold, anomaly-map scale, synthetic-defect checks) into a ``ModelBundle``.

Nothing gets in: every setting is checked (``TrainConfig.validate``, the method's own config)
before an image is read or a step is taken, a non-finite loss stops the run at that step, and
calibration refuses a non-finite threshold or map scale. Nothing is lost: a checkpoint is
written each epoch and belongs to one run (settings, the exact training files, the data
fingerprint, the model fine-tuned from: ``run_key``); a checkpoint of another run, or one that
cannot be read, is reported in one line and training starts over.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inspector.atomic import write_bytes_atomic
from inspector.data.images import ImageReadError, ReadReport, read_image
from inspector.engine import metrics
from inspector.engine.align import Alignment
from inspector.engine.tiling import TILE_MIN, Tiling, training_tiles
from inspector.engine.bundle import MAX_WEIGHT_BYTES, ModelBundle, ModelInfo
from inspector.engine.decision import ng_mask
from inspector.engine.device import cpu_bf16, device_label, limit_threads, select_device
from inspector.engine.events import CancelToken, TrainProgress
from inspector.engine.predictor import Predictor
from inspector.engine.preprocess import NORMALISATION, resize_to_model, to_tensor, to_uint8
from inspector.engine.threshold import TRAINING_MODES, Threshold, ThresholdMode, calibrate, check_false_alarm_rate, synthetic_defects, tiled
from inspector.models import DEFAULT_METHOD, AnomalyModel, StepContext, create_meta_model, create_model, get_method
from inspector.models.base import eval_mode
from inspector.text import first_line, shown

EPOCHS_MAX = 10_000
BATCH_SIZE_MAX = 4096
SEED_MAX = 2**32 - 1
AMP_OVERFLOWS_MAX = 30  # skipped AMP steps in a row (the scale halves each time) before it counts as diverged
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,2})?)$")


class TrainConfigError(ValueError):
    """A training setting out of range (one line: the option, the allowed values, what was given)."""


class TrainingDiverged(ValueError):
    """A training step gave a NaN or infinite loss: the weights are garbage from here on."""


def _whole(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TrainConfigError(f"{name} must be a whole number {low}..{high}, got {shown(value)}")
    return value




@dataclass
class TrainConfig:
    method: str = DEFAULT_METHOD
    image_size: int = 64
    channels: int = 1
    epochs: int = 15
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision (float16), used on CUDA only
    bf16: bool = True  # bfloat16 autocast, used on a CPU with bfloat16 instructions only (engine/device.cpu_bf16; bench/RESULTS.md)
    augment: bool = False  # random flips (for parts that look the same mirrored)
    holdout_fraction: float = 0.1  # good images kept out of training to calibrate the threshold
    threshold_mode: str = ThresholdMode.GOOD_QUANTILE.value  # one of TRAINING_MODES, kept a plain string (checkpoints)
    false_alarm_rate: float = 0.02  # target for good-quantile; the cap for synthetic-f1
    align: bool = False  # turn and move every part onto a reference good part before it is scored (engine/align.py)
    tile: int | None = None  # score tiles of this many image pixels a side (engine/tiling.py); None: the whole image
    tile_overlap: float = 0.25  # share of a tile's side its neighbour also covers
    params: dict[str, Any] = field(default_factory=dict)  # method hyper-parameters

    def __post_init__(self) -> None:
        self.validate()
        self.threshold_mode = ThresholdMode(self.threshold_mode).value  # a plain string: checkpoints load it without the enum

    def model_options(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "channels": self.channels, **self.params}

    def validate(self) -> None:
        """Refuse any setting out of range, in one line that names it (TrainConfigError).

        The core guard every path goes through (CLI, GUI, retrain; ``Trainer.fit`` calls it again
        in case a field was changed after construction), so nothing bad reaches the first step.
        Also builds the method's config from ``params``, which checks each method parameter's
        type and range without allocating a network.
        """
        try:
            get_method(self.method if isinstance(self.method, str) else repr(self.method))
        except KeyError as e:
            raise TrainConfigError(str(e.args[0])) from None
        size = _whole("image_size", self.image_size, 32, 256)
        if size & (size - 1):
            raise TrainConfigError(f"image_size must be a power of two 32..256 (32, 64, 128, 256), got {size}")
        if isinstance(self.channels, bool) or not isinstance(self.channels, int) or self.channels not in (1, 3):
            raise TrainConfigError(f"channels must be 1 (gray) or 3 (RGB), got {shown(self.channels)}")
        # 0 epochs: no gradient steps, only the fitted statistics (a method's feature Gaussian)
        _whole("epochs", self.epochs, 0, EPOCHS_MAX)
        _whole("batch_size", self.batch_size, 1, BATCH_SIZE_MAX)
        _whole("seed", self.seed, 0, SEED_MAX)
        if not isinstance(self.device, str) or not _DEVICE.match(self.device.lower()):
            raise TrainConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got {shown(self.device)}")
        for name in ("amp", "bf16", "augment", "align"):
            if not isinstance(getattr(self, name), bool):
                raise TrainConfigError(f"{name} must be true or false, got {shown(getattr(self, name))}")
        if self.tile is not None or self.tile_overlap != 0.25:
            try:
                self.tiling()
            except ValueError as e:
                raise TrainConfigError(str(e)) from None
        if self.align and self.tile is not None:
            raise TrainConfigError("align and tile do not go together: alignment puts whole parts in place, tiles cut large images")
        h = self.holdout_fraction
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not (0.0 < h <= 0.5):
            raise TrainConfigError(f"holdout_fraction must be a number in (0, 0.5], got {shown(h)}")
        if self.threshold_mode not in TRAINING_MODES:
            raise TrainConfigError(f"threshold_mode must be one of {', '.join(TRAINING_MODES)}, got {shown(self.threshold_mode)}")
        try:
            check_false_alarm_rate(self.false_alarm_rate)
        except ValueError as e:
            raise TrainConfigError(str(e)) from None
        if not isinstance(self.params, dict) or not all(isinstance(k, str) for k in self.params):
            raise TrainConfigError(f"params must map parameter names to values, got {shown(self.params)}")
        for key in ("image_size", "channels"):
            if key in self.params:
                raise TrainConfigError(f"param '{key}' is a training setting: set it as {key} (--{key.replace('_', '-')}), not as a method parameter")
        self.method_config()

    def tiling(self) -> Tiling | None:
        """The tiling of these settings (ValueError for a bad tile size or overlap)."""
        if self.tile is None:
            Tiling(TILE_MIN, self.tile_overlap)  # checks the overlap alone
            return None
        return Tiling(self.tile, self.tile_overlap)

    def method_config(self):
        """The method's validated config for these settings (no network is built)."""
        cls = get_method(self.method)
        try:
            config = cls.Config.from_dict(self.model_options())
            config.validate()
        except (TypeError, ValueError) as e:
            raise TrainConfigError(f"method '{self.method}': {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        return config


@dataclass
class SampleReconstructions:
    """Event: a few held-out images and their reconstructions, for live previews."""

    epoch: int
    originals: np.ndarray  # uint8 (B, H, W[, 3])
    reconstructions: np.ndarray


@dataclass
class ImagesSkipped:
    """Event: files that could not be read and were left out of training."""

    report: ReadReport


@dataclass
class TrainNotice:
    """Event: one line the user should read about the run (the CLI prints it, the GUI shows it).

    kind: ``resumed`` (from a checkpoint of this very run, at ``epoch`` of ``epochs``),
    ``checkpoint-ignored`` (it belongs to another run) or ``checkpoint-unreadable``.
    """

    kind: str
    message: str
    epoch: int = 0
    epochs: int = 0


Event = TrainProgress | SampleReconstructions | ImagesSkipped | TrainNotice


def run_key(
    config: TrainConfig,
    image_paths: Sequence[Path],
    data_info: dict[str, Any] | None = None,
    init_from: ModelBundle | None = None,
) -> str:
    """A short hash of what makes "this very run": the settings, the exact training files in
    order (absolute path, size, modification time), the data fingerprint and the model it
    fine-tunes. A checkpoint resumes only a run with the same key; checkpoint files are named
    by it, so two runs with the same model name never take over each other's checkpoint."""
    files = []
    for p in image_paths:
        p = Path(p)
        try:
            st = p.stat()
            files.append([str(p.absolute()), st.st_size, st.st_mtime_ns])
        except OSError:
            files.append([str(p.absolute()), -1, -1])
    parent = None
    if init_from is not None:
        parent = hashlib.sha256(json.dumps(init_from.info.to_dict(), sort_keys=True, default=str).encode()).hexdigest()
    identity = {
        "config": asdict(config),
        "files": files,
        "fingerprint": (data_info or {}).get("fingerprint"),
        "init_from": parent,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def holdout_indices(n: int, fraction: float, seed: int) -> list[int]:
    """Which of ``n`` good training images are held out to calibrate (sorted); all of them when
    there are too few to split (the model is then calibrated on its training images). Export
    finds the same images again to measure parity on them."""
    n_hold = max(int(round(n * fraction)), min(8, n // 4))
    if n < 10 or n_hold < 2:
        return list(range(n))
    return sorted(np.random.default_rng(seed).permutation(n)[:n_hold].tolist())


class Trainer:
    """Trains one model. Call ``fit`` from a worker thread; events arrive through ``on_event``."""

    def __init__(
        self,
        config: TrainConfig,
        on_event: Callable[[Event], None] | None = None,
        cancel: CancelToken | None = None,
        checkpoint_path: Path | None = None,
    ) -> None:
        self.config = config
        self.on_event = on_event if on_event is not None else (lambda event: None)
        self.cancel = cancel if cancel is not None else CancelToken()
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.device = select_device(config.device)
        self.run_key: str | None = None  # set by fit (see run_key)

    # --- public -------------------------------------------------------------------------
    def fit(
        self,
        image_paths: Sequence[Path],
        data_info: dict[str, Any] | None = None,
        init_from: ModelBundle | None = None,
        keep_checkpoint: bool = False,
    ) -> ModelBundle:
        """Train on good images; ``init_from`` fine-tunes an existing model of the same method.

        Every setting is checked before an image is read. The checkpoint is removed at the end
        unless ``keep_checkpoint``: a caller that stores the model somewhere removes it only
        once the model is safely stored (``remove_checkpoint``), so a kill in between loses nothing.
        """
        c = self.config
        c.validate()
        image_paths = list(image_paths)  # read twice: for the run's key, then the images
        if init_from is not None and init_from.info.method != c.method:
            raise TrainConfigError(f"cannot fine-tune a '{init_from.info.method}' model as method '{c.method}'")
        limit_threads()
        torch.manual_seed(c.seed)
        model = self._build_model()
        self.run_key = run_key(c, image_paths, data_info, init_from)
        parts, report = self._load(image_paths)
        if report.failed:
            self.on_event(ImagesSkipped(report))
        if len(parts) < 2:
            raise ValueError(f"training needs at least 2 readable good images, found {len(parts)}")
        alignment = None
        if c.align:  # trained and calibrated on parts where the predictor will put them
            alignment, aligned = Alignment.fit([p[0] for p in parts])
            parts = [[x] for x in aligned]
        fit_parts, holdout = self._split(parts)
        fit_images = [x for p in fit_parts for x in p]
        if c.tile is not None:
            fit_images = training_tiles(fit_images, c.seed)
        holdout_images = [x for p in holdout for x in p]  # the previews' images

        model = model.to(self.device)
        if init_from is not None:
            model.load_state_dict(init_from.model.state_dict())
        model.configure_optimizers()
        data = to_tensor(fit_images).to(self.device)
        # a fit-only method's one pass takes seconds: nothing to resume, no checkpoint to write
        start_epoch, history = (0, []) if model.fit_only else self._resume(model)
        started = time.perf_counter()
        if model.fit_only:
            self._fit_once(model, data, holdout_images)
        else:
            self._train(model, data, holdout_images, start_epoch, history)
        bundle = self._calibrate(model, data, holdout)
        bundle.info.alignment = alignment
        bundle.info.tiling = c.tiling()
        bundle.info.training = {
            **(data_info or {}),
            "config": asdict(c),
            "device": device_label(self.device),
            "precision": self.precision(),
            "n_train": len(fit_parts),
            "n_holdout": len(holdout),
            **({"n_tiles": len(fit_images)} if c.tile is not None else {}),
            "skipped": [[str(p), r] for p, r in report.failed],
            "duration_s": round(time.perf_counter() - started, 1),
            "final_losses": history[-1] if history else {},
            "fine_tuned_from": init_from.info.ref if init_from else None,
        }
        if init_from is not None:  # a fine-tuned version (a retrain) judges its parts by the same region rules
            bundle.info.rules = init_from.info.rules
        if not keep_checkpoint:
            self.remove_checkpoint()
        return bundle

    def remove_checkpoint(self) -> None:
        """Delete this run's checkpoint (once its model is stored)."""
        if self.checkpoint_path is not None:
            self.checkpoint_path.unlink(missing_ok=True)

    # --- steps ------------------------------------------------------------------------------
    def _build_model(self) -> AnomalyModel:
        """The method's network, built before any image is read: a bad method parameter is a
        one-line TrainConfigError here, not an error after minutes of reading images."""
        c = self.config
        try:
            shapes = create_meta_model(c.method, **c.model_options())  # sizes only, no memory
            size = sum(t.numel() * t.element_size() for t in shapes.state_dict().values())
            if size > MAX_WEIGHT_BYTES:
                raise TrainConfigError(
                    f"method '{c.method}': these settings make {size / 2**20:.0f} MB of weights, more than a model file "
                    f"may hold ({MAX_WEIGHT_BYTES >> 20} MB); use smaller sizes (width, nz, image_size)"
                )
            return create_model(c.method, **c.model_options())
        except (TypeError, ValueError) as e:
            if isinstance(e, TrainConfigError):
                raise
            raise TrainConfigError(f"method '{c.method}': {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None

    def _load(self, paths: Sequence[Path]) -> tuple[list[list[np.ndarray]], ReadReport]:
        """Read and resize one file at a time (camera images can be large); bad files are reported.
        Each part is its list of model-size inputs: the whole image, or its tiles."""
        c = self.config
        tiling = c.tiling()
        parts, report = [], ReadReport(ok=[], failed=[])
        for path in paths:
            self.cancel.raise_if_cancelled()
            try:
                image = read_image(path)
                pieces = [image] if tiling is None else tiling.cut(image)[0]
                parts.append([resize_to_model(p, c.image_size, c.channels) for p in pieces])
                report.ok.append(Path(path))
            except ImageReadError as e:
                report.failed.append((Path(path), e.reason))
        return parts, report

    def _split(self, images: list) -> tuple[list, list]:
        """Hold out good images for calibration; with very few images, calibrate on the training set."""
        hold = set(holdout_indices(len(images), self.config.holdout_fraction, self.config.seed))
        if len(hold) == len(images):
            return images, images
        return [im for i, im in enumerate(images) if i not in hold], [images[i] for i in sorted(hold)]

    def precision(self) -> str:
        """What the training steps compute in: float16 mixed on CUDA (``amp``), bfloat16 mixed on a
        CPU that has the instructions for it (``bf16``; emulated bfloat16 is slower) for a method
        that takes it (``AnomalyModel.bf16``), else float32 (and for a fit-only method, which has
        no training steps)."""
        c, method = self.config, get_method(self.config.method)
        if method.fit_only:
            return "float32"
        if c.amp and self.device.type == "cuda":
            return "float16 mixed"
        if c.bf16 and method.bf16 and self.device.type == "cpu" and cpu_bf16():
            return "bfloat16 mixed"
        return "float32"

    def _train(
        self,
        model: AnomalyModel,
        data: torch.Tensor,
        holdout: list[np.ndarray],
        start_epoch: int,
        history: list[dict[str, float]],
    ) -> None:
        c = self.config
        n = data.shape[0]
        batch_size = min(c.batch_size, n)
        steps_per_epoch = n // batch_size
        total_steps = steps_per_epoch * c.epochs
        precision = self.precision()
        amp = precision == "float16 mixed"
        ctx = StepContext(self.device, amp=precision != "float32", scaler=torch.amp.GradScaler("cuda") if amp else None,
                          total_steps=total_steps, amp_dtype=torch.float16 if amp else torch.bfloat16)
        gen = torch.Generator().manual_seed(c.seed)
        for _ in range(start_epoch):  # same shuffles after a resume as in an uninterrupted run
            torch.randperm(n, generator=gen)
        model.train()
        step = start_epoch * steps_per_epoch
        overflows = 0  # AMP steps in a row the grad scaler skipped
        run_start, run_step0 = time.perf_counter(), step
        for epoch in range(start_epoch, c.epochs):
            order = torch.randperm(n, generator=gen)
            sums: dict[str, float] = {}
            for b in range(steps_per_epoch):
                self.cancel.raise_if_cancelled()
                index = order[b * batch_size : (b + 1) * batch_size].to(self.device)
                batch = _augment(data[index], gen) if c.augment else data[index]
                ctx.step = step
                scale = ctx.scaler.get_scale() if ctx.scaler is not None else None
                losses = model.training_step(batch, ctx)
                if ctx.scaler is not None:
                    ctx.scaler.update()
                step += 1
                # mixed precision: an fp16 overflow is normal now and then; the scaler skips that
                # update and lowers its scale. Only a run of them means the training diverged.
                skipped = scale is not None and ctx.scaler.get_scale() < scale
                overflows = overflows + 1 if skipped else 0
                if not (skipped and overflows <= AMP_OVERFLOWS_MAX):
                    self._check_finite(losses, epoch + 1, step)
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                elapsed = time.perf_counter() - run_start
                rate = (step - run_step0) * batch_size / max(elapsed, 1e-9)
                self.on_event(
                    TrainProgress(
                        epoch + 1, c.epochs, step, total_steps, losses, rate,
                        eta_s=(total_steps - step) * batch_size / max(rate, 1e-9),
                    )
                )
            model.on_epoch_end(epoch + 1)
            history.append({k: v / max(steps_per_epoch, 1) for k, v in sums.items()})
            self._save_checkpoint(model, epoch + 1, history)
            self._emit_samples(model, holdout, epoch + 1)

    def _fit_once(self, model: AnomalyModel, data: torch.Tensor, holdout: list[np.ndarray]) -> None:
        """The whole training of a ``fit_only`` method: one pass over the training images in order,
        in batches of ``batch_size``, into ``fit_normal`` (eval mode, no grad), with a progress
        event after each batch and the cancel token checked before each, as one epoch of steps."""
        n = data.shape[0]
        batch_size = min(self.config.batch_size, n)
        steps = math.ceil(n / batch_size)
        run_start = time.perf_counter()

        def batches() -> Iterator[torch.Tensor]:
            for step in range(steps):
                self.cancel.raise_if_cancelled()
                yield data[step * batch_size : (step + 1) * batch_size]
                done = min((step + 1) * batch_size, n)
                rate = done / max(time.perf_counter() - run_start, 1e-9)
                self.on_event(TrainProgress(1, 1, step + 1, steps, {}, rate, eta_s=(n - done) / max(rate, 1e-9)))

        with eval_mode(model), torch.no_grad():
            model.fit_normal(batches())
        self.cancel.raise_if_cancelled()
        self._emit_samples(model, holdout, 1)

    def _check_finite(self, losses: dict[str, float], epoch: int, step: int) -> None:
        """Stop at the first NaN or infinite loss: every later step would only spread it."""
        for name, value in losses.items():
            if not math.isfinite(value):
                params = " ".join(f"{k}={v}" for k, v in self.config.params.items())
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch} step {step}: loss '{name}' is {value}; "
                    f"lower the learning rate or check --param values" + (f" ({params})" if params else "")
                )

    def _calibrate(self, model: AnomalyModel, data: torch.Tensor, holdout_parts: list[list[np.ndarray]]) -> ModelBundle:
        """Statistics of the training images, then threshold and map scale from held-out good
        parts (a tiled part's score is its highest tile's); synthetic defects, painted on one
        tile of each, check detection and localisation."""
        c = self.config
        self.on_event(TrainProgress(c.epochs, c.epochs, 0, 0, {}, 0.0, 0.0, phase="calibrate"))
        holdout = [x for p in holdout_parts for x in p]
        batches = [to_tensor(holdout[i : i + 64]) for i in range(0, len(holdout), 64)]
        with eval_mode(model), torch.no_grad():
            if not model.fit_only:  # a fit-only method was fitted on them by _fit_once
                model.fit_normal(self._cancellable(data[i : i + 64] for i in range(0, len(data), 64)))
            model.calibrate(b.to(self.device) for b in batches)
        provisional = ModelInfo(c.method, model.config.to_dict(), Threshold(float("inf"), "uncalibrated"))
        predictor = Predictor(ModelBundle(model, provisional), self.device)
        tile_scores, good_maps = predictor.score_at_model_size(holdout)
        ends = np.cumsum([len(p) for p in holdout_parts])
        good_scores = np.array([tile_scores[end - len(p) : end].max() for p, end in zip(holdout_parts, ends)])
        self.cancel.raise_if_cancelled()
        # always: they also measure detection and localisation
        defects = synthetic_defects([p[len(p) // 2] for p in holdout_parts], seed=c.seed)
        bad_scores, bad_maps = predictor.score_at_model_size([d[0] for d in defects])
        masks = [d[1] for d in defects]

        threshold = calibrate(c.threshold_mode, good_scores, c.false_alarm_rate, bad_scores)
        if c.tile is not None:  # a part's score is the highest of its tiles': the tail decides
            threshold = tiled(threshold, tile_scores, int(np.median([len(p) for p in holdout_parts])), c.false_alarm_rate)
        labels = np.r_[np.zeros(len(good_scores)), np.ones(len(bad_scores))]
        scores = np.r_[good_scores, bad_scores]
        good_pixels = np.concatenate([m.ravel() for m in good_maps])
        if not np.isfinite(good_pixels).all():
            raise ValueError(
                "calibration refused: the anomaly maps of held-out good images hold NaN or infinite values; "
                "lower the learning rate or check the method parameters"
            )
        low, high = np.quantile(good_pixels, [0.5, 0.999])
        calibration = {
            "holdout_false_alarm_rate": float(np.mean(ng_mask(good_scores, threshold.value))),
            "synthetic_detection_rate": float(np.mean(ng_mask(bad_scores, threshold.value))),
            "synthetic_image_auroc": metrics.auroc(labels, scores),
            "synthetic_pixel_auroc": metrics.pixel_auroc(masks, bad_maps),
        }
        info = ModelInfo(
            method=c.method,
            config=model.config.to_dict(),
            threshold=threshold,
            normalisation=NORMALISATION,
            map_scale=_finite_map_scale(_map_scale(low, high, model.map_max)),
            metrics={"calibration": calibration},
        )
        return ModelBundle(model.eval(), info)

    def _cancellable(self, batches: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        for batch in batches:
            self.cancel.raise_if_cancelled()
            yield batch

    def _emit_samples(self, model: AnomalyModel, holdout: list[np.ndarray], epoch: int) -> None:
        batch = to_tensor(holdout[:8]).to(self.device)
        devices = [self.device] if self.device.type == "cuda" else []
        # previews never draw from the training's random stream: a resumed run (which skips
        # them for the epochs before its checkpoint) then continues exactly as an uninterrupted one
        with torch.random.fork_rng(devices=devices), eval_mode(model), torch.no_grad():
            recon = model.sample_reconstructions(batch)
        self.on_event(SampleReconstructions(epoch, to_uint8(batch), to_uint8(recon)))

    # --- checkpoints ------------------------------------------------------------------------
    def _save_checkpoint(self, model: AnomalyModel, epoch: int, history: list) -> None:
        if self.checkpoint_path is None:
            return
        state = {
            "epoch": epoch,
            "run": self.run_key,  # which run this is (see run_key): only that run resumes from it
            "config": asdict(self.config),
            "model": model.state_dict(),
            "optimizers": model.optimizer_state(),
            "history": history,
            "rng": _rng_state(),  # methods that draw at random (masks, painted defects) continue as if never stopped
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_bytes_atomic(self.checkpoint_path, buffer.getvalue())

    def _notice(self, kind: str, message: str, epoch: int = 0) -> None:
        self.on_event(TrainNotice(kind, message, epoch, self.config.epochs))

    def _resume(self, model: AnomalyModel) -> tuple[int, list]:
        """Continue from the last epoch's checkpoint when it belongs to this very run; a
        checkpoint of another run, or one that cannot be read, is reported and ignored."""
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return 0, []
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:  # noqa: BLE001 — truncated, random bytes, not a torch file: all the same to us
            # torch's own message is many lines and suggests weights_only=False, which would run code from the file
            self._notice("checkpoint-unreadable", f"checkpoint {path} is unreadable (truncated or corrupt: {type(e).__name__}); starting over")
            return 0, []
        if not isinstance(state, dict) or state.get("run") != self.run_key or state.get("config") != asdict(self.config):
            self._notice("checkpoint-ignored", f"checkpoint {path} belongs to another run (different data/settings); starting over")
            return 0, []
        epoch = state.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= self.config.epochs:
            self._notice("checkpoint-unreadable", f"checkpoint {path} is unreadable (epoch {shown(epoch)}); starting over")
            return 0, []
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        optimizers = model.optimizer_state()
        try:
            model.load_state_dict(state["model"])
            model.load_optimizer_state(state["optimizers"])
            history = [dict(h) for h in state["history"]]
            rng = state.get("rng")
            if rng is not None:
                _set_rng_state(rng)
        except Exception as e:  # noqa: BLE001 — a damaged state: back to the fresh network, start over
            model.load_state_dict(weights)
            model.load_optimizer_state(optimizers)
            self._notice("checkpoint-unreadable", f"checkpoint {path} is unreadable ({first_line(e)}); starting over")
            return 0, []
        self._notice("resumed", f"resuming from epoch {epoch} of {self.config.epochs} ({path.name})", epoch)
        return epoch, history




def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _map_scale(good_median: float, good_top: float, map_max: float | None) -> dict[str, float]:
    """Heat-map display range: cold at the median good pixel, full heat at 1.5 × the 99.9 % quantile of
    good pixels (a margin above good texture), but never past the largest value the map can take."""
    high = good_top * 1.5 if map_max is None else min(good_top * 1.5, map_max)
    return {"low": float(good_median), "high": float(max(high, good_median + 1e-6))}


def _finite_map_scale(scale: dict[str, float]) -> dict[str, float]:
    if not all(math.isfinite(v) for v in scale.values()):
        raise ValueError(f"calibration refused: the anomaly-map scale is not finite ({scale}); lower the learning rate or check the method parameters")
    return scale


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal/vertical flips of the whole batch."""
    flips = torch.rand(2, generator=gen)
    if flips[0] < 0.5:
        x = x.flip(-1)
    if flips[1] < 0.5:
        x = x.flip(-2)
    return x
