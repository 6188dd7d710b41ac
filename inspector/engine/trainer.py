"""Training for every method: device choice, AMP on CUDA, fixed seeds, progress events,
cancellation every step, a checkpoint each epoch with resume, then calibration on held-out
good images (threshold, anomaly-map scale, synthetic-defect checks) into a ``ModelBundle``."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inspector.data.images import ImageReadError, ReadReport, read_image
from inspector.data.synthetic import make_defect_set
from inspector.engine import metrics
from inspector.atomic import write_bytes_atomic
from inspector.engine.bundle import ModelBundle, ModelInfo
from inspector.engine.device import device_label, limit_threads, select_device
from inspector.engine.events import CancelToken, TrainProgress
from inspector.engine.predictor import Predictor
from inspector.engine.preprocess import NORMALISATION, resize_to_model, to_tensor, to_uint8
from inspector.engine.threshold import Threshold, from_good_scores, with_defects
from inspector.models import AnomalyModel, StepContext, create_model
from inspector.models.base import eval_mode


@dataclass
class TrainConfig:
    method: str = "ganomaly"
    image_size: int = 64
    channels: int = 1
    epochs: int = 15
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision, used on CUDA only
    augment: bool = False  # random flips (for parts that look the same mirrored)
    holdout_fraction: float = 0.1  # good images kept out of training to calibrate the threshold
    threshold_mode: str = "good-quantile"  # or "synthetic-f1"
    false_alarm_rate: float = 0.02  # target for good-quantile; the cap for synthetic-f1
    params: dict[str, Any] = field(default_factory=dict)  # method hyper-parameters

    def model_options(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "channels": self.channels, **self.params}


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


Event = TrainProgress | SampleReconstructions | ImagesSkipped


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
        self.on_event = on_event or (lambda event: None)
        self.cancel = cancel or CancelToken()
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.device = select_device(config.device)

    # --- public -------------------------------------------------------------------------
    def fit(
        self,
        image_paths: Sequence[Path],
        data_info: dict[str, Any] | None = None,
        init_from: ModelBundle | None = None,
    ) -> ModelBundle:
        """Train on good images; ``init_from`` fine-tunes an existing model of the same method."""
        c = self.config
        limit_threads()
        torch.manual_seed(c.seed)
        images, report = self._load(image_paths)
        if report.failed:
            self.on_event(ImagesSkipped(report))
        if len(images) < 2:
            raise ValueError(f"training needs at least 2 readable good images, found {len(images)}")
        fit_images, holdout_images = self._split(images)

        model = create_model(c.method, **c.model_options()).to(self.device)
        if init_from is not None:
            model.load_state_dict(init_from.model.state_dict())
        model.configure_optimizers()
        data = to_tensor(fit_images).to(self.device)
        start_epoch, history = self._resume(model, data_info)
        started = time.perf_counter()
        self._train(model, data, holdout_images, start_epoch, history)
        bundle = self._calibrate(model, data, holdout_images)
        bundle.info.training = {
            **(data_info or {}),
            "config": asdict(c),
            "device": device_label(self.device),
            "n_train": len(fit_images),
            "n_holdout": len(holdout_images),
            "skipped": [[str(p), r] for p, r in report.failed],
            "duration_s": round(time.perf_counter() - started, 1),
            "final_losses": history[-1] if history else {},
            "fine_tuned_from": init_from.info.ref if init_from else None,
        }
        if self.checkpoint_path is not None:
            self.checkpoint_path.unlink(missing_ok=True)
        return bundle

    # --- steps ------------------------------------------------------------------------------
    def _load(self, paths: Sequence[Path]) -> tuple[list[np.ndarray], ReadReport]:
        """Read and resize one file at a time (camera images can be large); bad files are reported."""
        c = self.config
        images, report = [], ReadReport(ok=[], failed=[])
        for path in paths:
            self.cancel.raise_if_cancelled()
            try:
                images.append(resize_to_model(read_image(path), c.image_size, c.channels))
                report.ok.append(Path(path))
            except ImageReadError as e:
                report.failed.append((Path(path), e.reason))
        return images, report

    def _split(self, images: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Hold out good images for calibration; with very few images, calibrate on the training set."""
        n = len(images)
        n_hold = max(int(round(n * self.config.holdout_fraction)), min(8, n // 4))
        if n < 10 or n_hold < 2:
            return images, images
        order = np.random.default_rng(self.config.seed).permutation(n)
        hold = set(order[:n_hold].tolist())
        return [im for i, im in enumerate(images) if i not in hold], [images[i] for i in sorted(hold)]

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
        amp = c.amp and self.device.type == "cuda"
        ctx = StepContext(self.device, amp=amp, scaler=torch.amp.GradScaler("cuda") if amp else None, total_steps=total_steps)
        gen = torch.Generator().manual_seed(c.seed)
        for _ in range(start_epoch):  # same shuffles after a resume as in an uninterrupted run
            torch.randperm(n, generator=gen)
        model.train()
        step = start_epoch * steps_per_epoch
        run_start, run_step0 = time.perf_counter(), step
        for epoch in range(start_epoch, c.epochs):
            order = torch.randperm(n, generator=gen)
            sums: dict[str, float] = {}
            for b in range(steps_per_epoch):
                self.cancel.raise_if_cancelled()
                index = order[b * batch_size : (b + 1) * batch_size].to(self.device)
                batch = _augment(data[index], gen) if c.augment else data[index]
                ctx.step = step
                losses = model.training_step(batch, ctx)
                if ctx.scaler is not None:
                    ctx.scaler.update()
                step += 1
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

    def _calibrate(self, model: AnomalyModel, data: torch.Tensor, holdout: list[np.ndarray]) -> ModelBundle:
        """Statistics of the training images, then threshold and map scale from held-out good
        images; synthetic defects check localisation."""
        c = self.config
        self.on_event(TrainProgress(c.epochs, c.epochs, 0, 0, {}, 0.0, 0.0, phase="calibrate"))
        batches = [to_tensor(holdout[i : i + 64]) for i in range(0, len(holdout), 64)]
        with eval_mode(model), torch.no_grad():
            model.fit_normal(self._cancellable(data[i : i + 64] for i in range(0, len(data), 64)))
            model.calibrate(b.to(self.device) for b in batches)
        provisional = ModelInfo(c.method, model.config.to_dict(), Threshold(float("inf"), "uncalibrated"))
        predictor = Predictor(ModelBundle(model, provisional), self.device)
        good_scores, good_maps = predictor.score_at_model_size(holdout)
        self.cancel.raise_if_cancelled()
        defects = make_defect_set(holdout, n=max(len(holdout), 32), seed=c.seed)
        bad_scores, bad_maps = predictor.score_at_model_size([d[0] for d in defects])
        masks = [d[1] for d in defects]

        if c.threshold_mode == "synthetic-f1":
            threshold = with_defects(good_scores, bad_scores, "synthetic-f1", c.false_alarm_rate)
        elif c.threshold_mode == "good-quantile":
            threshold = from_good_scores(good_scores, c.false_alarm_rate)
        else:
            raise ValueError(f"unknown threshold mode '{c.threshold_mode}'")
        labels = np.r_[np.zeros(len(good_scores)), np.ones(len(bad_scores))]
        scores = np.r_[good_scores, bad_scores]
        good_pixels = np.concatenate([m.ravel() for m in good_maps])
        low, high = np.quantile(good_pixels, [0.5, 0.999])
        calibration = {
            "holdout_false_alarm_rate": float(np.mean(good_scores > threshold.value)),
            "synthetic_detection_rate": float(np.mean(bad_scores > threshold.value)),
            "synthetic_image_auroc": metrics.auroc(labels, scores),
            "synthetic_pixel_auroc": metrics.pixel_auroc(masks, bad_maps),
        }
        info = ModelInfo(
            method=c.method,
            config=model.config.to_dict(),
            threshold=threshold,
            normalisation=NORMALISATION,
            map_scale=_map_scale(low, high, model.map_max),
            metrics={"calibration": calibration},
        )
        return ModelBundle(model.eval(), info)

    def _cancellable(self, batches: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        for batch in batches:
            self.cancel.raise_if_cancelled()
            yield batch

    def _emit_samples(self, model: AnomalyModel, holdout: list[np.ndarray], epoch: int) -> None:
        batch = to_tensor(holdout[:8]).to(self.device)
        with eval_mode(model), torch.no_grad():
            recon = model.sample_reconstructions(batch)
        self.on_event(SampleReconstructions(epoch, to_uint8(batch), to_uint8(recon)))

    # --- checkpoints ------------------------------------------------------------------------
    def _save_checkpoint(self, model: AnomalyModel, epoch: int, history: list) -> None:
        if self.checkpoint_path is None:
            return
        state = {
            "epoch": epoch,
            "config": asdict(self.config),
            "model": model.state_dict(),
            "optimizers": model.optimizer_state(),
            "history": history,
            "rng": _rng_state(),  # methods that draw at random (masks, painted defects) continue as if never stopped
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_bytes_atomic(self.checkpoint_path, buffer.getvalue())

    def _resume(self, model: AnomalyModel, data_info: dict | None) -> tuple[int, list]:
        """Continue from the last epoch's checkpoint when it belongs to this very run."""
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return 0, []
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state.get("config") != asdict(self.config):
            return 0, []
        model.load_state_dict(state["model"])
        model.load_optimizer_state(state["optimizers"])
        if "rng" in state:
            _set_rng_state(state["rng"])
        return int(state["epoch"]), list(state["history"])


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


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal/vertical flips of the whole batch."""
    flips = torch.rand(2, generator=gen)
    if flips[0] < 0.5:
        x = x.flip(-1)
    if flips[1] < 0.5:
        x = x.flip(-2)
    return x
