"""The one predictor: image(s) → score, decision, anomaly map, reconstruction.

The CLI, the GUI, live mode, evaluation, calibration and the benchmarks all score through
this class, so preprocessing and post-processing exist exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
import torch

from inspector.data.images import ImageReadError, read_image
from inspector.engine.align import unwarp
from inspector.engine.bundle import ModelBundle
from inspector.engine.decision import decide_with_rules
from inspector.engine.device import select_device
from inspector.engine.events import CancelToken, Progress
from inspector.engine.preprocess import resize_to_model, to_tensor, to_uint8
from inspector.engine.regions import DEFAULT_LEVEL, Region, RegionRules, find_regions
from inspector.models.base import eval_mode


@dataclass
class Prediction:
    score: float
    threshold: float
    anomaly_map: np.ndarray  # float32 (H, W) at the input image's resolution
    heat: np.ndarray  # float32 (H, W) in [0, 1]: the map on the model's fixed display scale
    reconstruction: np.ndarray  # uint8, input resolution, the model's channels
    image: np.ndarray  # the input image (uint8)
    elapsed_ms: float = 0.0
    path: Path | None = None
    rules: RegionRules | None = field(default=None, repr=False)  # the model's region rules (None: the score decides)
    alignment_confidence: float | None = None  # ECC's correlation when the model aligns parts (0: could not align)

    @property
    def is_anomalous(self) -> bool:
        return self.decision == "NG"

    @property
    def decision(self) -> str:
        return self.decide(self.threshold)[0]

    @property
    def reason(self) -> str:
        """Which rule decided, in a few words."""
        return self.decide(self.threshold)[1]

    def decide(self, threshold: float) -> tuple[str, str]:
        """The decision and its reason at ``threshold`` (the GUI tries thresholds without saving).
        Without rules the score alone decides: no regions are computed."""
        if self.rules is None:
            return decide_with_rules(self.score, threshold, (), None)
        return decide_with_rules(self.score, threshold, [r.area for r in self.regions], self.rules, self.map_finite)

    @cached_property
    def map_finite(self) -> bool:
        """Whether the anomaly map holds only numbers (the rules judge a map that does not as NG)."""
        return bool(np.isfinite(self.anomaly_map).all())

    @cached_property
    def regions(self) -> list[Region]:
        """The defect regions, largest first, found when first asked for (at the rules' level and
        pixel size, else at ``DEFAULT_LEVEL`` in pixels)."""
        rules = self.rules
        level = rules.level if rules is not None else DEFAULT_LEVEL
        return find_regions(self.heat, self.anomaly_map, level, rules.pixel_size_mm if rules is not None else None)

    def overlay(self, opacity: float = 0.5) -> np.ndarray:
        return heat_overlay(self.image, self.heat, opacity)


def heat_overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """RGB image with the heat map (turbo colours) blended in where it is warm."""
    rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    rgb = rgb[:, :, :3]
    colours = cv2.applyColorMap((np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
    alpha = (opacity * np.clip(heat, 0.15, 1.0))[..., None]  # cold areas stay readable
    return (rgb * (1 - alpha) + colours * alpha).astype(np.uint8)


class ScoreError(ImageReadError):
    """A file was read but scoring it failed (e.g. out of memory); reported like an unreadable file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(path, reason)
        self.args = (f"cannot score image '{self.path}': {reason}",)

    def __str__(self) -> str:
        return self.args[0]


# predict_paths scores at most this many input pixels at once (32 MP: a few large camera images)
BATCH_PIXELS = 32_000_000


class Predictor:
    def __init__(self, bundle: ModelBundle, device: str | torch.device = "auto") -> None:
        self.device = device if isinstance(device, torch.device) else select_device(device)
        self.bundle = bundle
        self.model = bundle.model.to(self.device).eval()
        self.info = bundle.info
        self.threshold = bundle.info.threshold.value  # the GUI may try another one without saving

    @classmethod
    def open(cls, ref: str | Path, device: str = "auto", registry=None) -> "Predictor":
        """From a model file path or a registry name (``name`` or ``name@vN``)."""
        from inspector.engine.registry import ModelRegistry

        path = (registry or ModelRegistry()).resolve(ref)
        return cls(ModelBundle.load(path), device)

    # --- scoring ----------------------------------------------------------------------------
    def predict(self, image: np.ndarray, path: Path | None = None) -> Prediction:
        return self.predict_batch([image], paths=[path])[0]

    def predict_batch(
        self, images: Sequence[np.ndarray], paths: Sequence[Path | None] | None = None
    ) -> list[Prediction]:
        """Score images of any size together (grouped by model input size)."""
        started = time.perf_counter()
        prepared = [self._prepare(im) for im in images]
        inputs = [x for x, _, _ in prepared]
        results: list[Prediction | None] = [None] * len(images)
        groups: dict[tuple, list[int]] = {}
        for i, x in enumerate(inputs):
            groups.setdefault(x.shape, []).append(i)
        for indices in groups.values():
            scores, maps, recons = self._score([inputs[i] for i in indices])
            for j, i in enumerate(indices):
                results[i] = self._result(images[i], scores[j], maps[j], recons[j], *prepared[i][1:])
        elapsed = (time.perf_counter() - started) * 1000 / max(len(images), 1)
        for i, r in enumerate(results):
            r.elapsed_ms = elapsed
            r.path = paths[i] if paths else None
        return results  # type: ignore[return-value]

    def predict_paths(
        self,
        paths: Iterable[Path],
        batch_size: int = 16,
        cancel: CancelToken | None = None,
        progress: Callable[[Progress], None] | None = None,
    ) -> Iterator[tuple[Path, Prediction | ImageReadError]]:
        """Score files; a file that cannot be read or scored yields its error and the rest carry on.

        A reading failure is an ImageReadError, a scoring failure a ScoreError (a subclass, so every
        caller that reports unreadable files reports it too). When a batch fails, its images are
        scored one by one so only the culprit is lost. Batches are also cut at ``BATCH_PIXELS``
        pixels so a few large camera images are never all held at once.
        """
        paths = list(paths)
        pending: list[tuple[Path, np.ndarray]] = []
        pending_pixels = 0
        done = 0

        def flush() -> Iterator[tuple[Path, Prediction | ImageReadError]]:
            nonlocal done, pending_pixels
            batch = list(pending)
            pending.clear()
            pending_pixels = 0
            try:
                predictions: list[Prediction | ScoreError] = list(
                    self.predict_batch([im for _, im in batch], [p for p, _ in batch])
                )
            except Exception:  # noqa: BLE001 — find the image that failed; the others are scored
                predictions = [self._predict_one(im, p) for p, im in batch]
            for (p, _), pred in zip(batch, predictions):
                done += 1
                yield p, pred
            if progress:
                progress(Progress(done, len(paths)))

        for path in paths:
            if cancel is not None:
                cancel.raise_if_cancelled()
            try:
                image = read_image(path)
            except ImageReadError as e:
                done += 1
                yield path, e
                continue
            pending.append((path, image))
            pending_pixels += image.shape[0] * image.shape[1]
            if len(pending) >= batch_size or pending_pixels >= BATCH_PIXELS:
                yield from flush()
        if pending:
            yield from flush()

    def _predict_one(self, image: np.ndarray, path: Path) -> Prediction | ScoreError:
        try:
            return self.predict_batch([image], [path])[0]
        except MemoryError:
            return ScoreError(path, f"not enough memory to score a {image.shape[1]}×{image.shape[0]} image")
        except Exception as e:  # noqa: BLE001 — reported with the file, the run carries on
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            return ScoreError(path, f"{type(e).__name__}: {lines[-1][:200] if lines else ''}".rstrip(": "))

    def score_at_model_size(self, images: Sequence[np.ndarray], batch_size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
        """Scores and model-resolution maps of images already at the model's input size (calibration, benchmarks)."""
        scores, maps = [], []
        for i in range(0, len(images), batch_size):
            s, m, _ = self._score([self._prepare(im)[0] for im in images[i : i + batch_size]])
            scores.append(s)
            maps.extend(m)
        return np.concatenate(scores) if scores else np.zeros(0), maps

    # --- internals --------------------------------------------------------------------------
    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, float | None]:
        """Model input; with alignment, turned and moved onto the reference (the warp and the
        confidence come along, so the map can be moved back onto the part)."""
        size = self.model.input_size(image.shape[0], image.shape[1])
        x = resize_to_model(image, size, self.info.channels)
        if self.info.alignment is None:
            return x, None, None
        return self.info.alignment.align(x)

    @torch.inference_mode()
    def _score(self, inputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        batch = to_tensor(inputs).to(self.device, non_blocking=True)
        with eval_mode(self.model):
            out = self.model.score(batch)
        return (
            out.image_score.float().cpu().numpy(),
            out.anomaly_map.float().cpu().numpy(),
            to_uint8(out.reconstruction),
        )

    def _result(self, image: np.ndarray, score: float, amap: np.ndarray, recon: np.ndarray,
                matrix: np.ndarray | None = None, confidence: float | None = None) -> Prediction:
        if matrix is not None:  # made in the reference's frame: back onto the part as it lay
            amap, recon = unwarp(amap, matrix), unwarp(recon, matrix)
        h, w = image.shape[:2]
        if amap.shape != (h, w):
            amap = cv2.resize(amap, (w, h), interpolation=cv2.INTER_LINEAR)
            recon = cv2.resize(recon, (w, h), interpolation=cv2.INTER_LINEAR)
        scale = self.info.map_scale
        heat = np.clip((amap - scale["low"]) / max(scale["high"] - scale["low"], 1e-12), 0, 1).astype(np.float32)
        return Prediction(float(score), self.threshold, amap.astype(np.float32), heat, recon, image, rules=self.info.rules,
                          alignment_confidence=confidence)
