"""The one predictor: image(s) → score, decision, anomaly map, reconstruction.

The CLI, the GUI, live mode, evaluation, calibration and the benchmarks all score through
this class, so preprocessing and post-processing exist exactly once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from inspector.data.images import ImageReadError, read_image
from inspector.engine.align import unwarp
from inspector.engine.backends import Backend
from inspector.engine.decision import NG, decide_with_rules
from inspector.engine.events import CancelToken, Progress
from inspector.engine.preprocess import resize_to_model, to_array
from inspector.engine.regions import DEFAULT_LEVEL, Region, RegionRules, find_regions

if TYPE_CHECKING:  # torch: only where a trained (not exported) model is scored
    from inspector.engine.bundle import ModelBundle
    from inspector.engine.exported import ExportedModel


RegionEntry = tuple[tuple[float, ...], bool]  # region areas, largest first; whether the map was finite


@dataclass
class Prediction:
    score: float
    threshold: float
    anomaly_map: np.ndarray  # float32 (H, W) at the input image's resolution
    heat: np.ndarray  # float32 (H, W) in [0, 1]: the map on the model's fixed display scale
    reconstruction: np.ndarray | None  # uint8, input resolution, the model's channels; None when not asked for
    image: np.ndarray  # the input image (uint8)
    elapsed_ms: float = 0.0
    path: Path | None = None
    rules: RegionRules | None = field(default=None, repr=False)  # the model's region rules (None: the score decides)
    alignment_confidence: float | None = None  # ECC's correlation when the model aligns parts (0: could not align)
    unaligned: bool = False  # the model aligns parts and this one could not be aligned: NG, its score is +inf

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
        if self.unaligned:
            return NG, "part could not be aligned to the reference"
        if self.rules is None:
            return decide_with_rules(self.score, threshold, (), None)
        return decide_with_rules(self.score, threshold, [r.area for r in self.regions], self.rules, self.map_finite)

    @property
    def region_entry(self) -> RegionEntry:
        """What a decision by region rules needs of this prediction besides its score, as the
        app keeps it per file: the region areas (largest first) and whether the map was finite."""
        return tuple(r.area for r in self.regions), self.map_finite

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
TILE_BATCH = 64  # model inputs scored together (a 5 MP frame in 256 px tiles is about 140)


@dataclass
class _Prepared:
    """One image's model inputs and how to put their maps back onto it."""

    inputs: list[np.ndarray]
    boxes: list[tuple[int, int, int, int]] | None = None  # tiled: where each input came from
    matrix: np.ndarray | None = None  # aligned: the warp from the reference's frame onto the part
    confidence: float | None = None  # aligned: ECC's correlation


class Predictor:
    """Scores with a trained model (``ModelBundle``: torch) or an exported one (``ExportedModel``:
    ONNX Runtime or OpenVINO); everything around the network is the same code for both."""

    def __init__(self, model: ModelBundle | ExportedModel, device: Any = "auto", runtime: str = "auto",
                 threads: int | None = None) -> None:
        """``threads``: intra-op threads of an exported model's runtime (default: as torch's, see
        ``engine/device.py``); torch's are process-wide and set there."""
        self.bundle = model
        self.info = model.info
        self.backend: Backend = model.backend(device, runtime, threads)
        self.threshold = model.info.threshold.value  # the GUI may try another one without saving

    @property
    def model(self) -> Any:
        """What runs the network: the torch module for a trained model, else the backend."""
        return getattr(self.backend, "model", self.backend)

    @property
    def device(self) -> Any:
        """The torch device of a trained model, else where the backend runs, in words."""
        return getattr(self.backend, "torch_device", self.backend.device)

    @property
    def runtime(self) -> str:
        return self.backend.runtime

    @classmethod
    def open(cls, ref: str | Path, device: str = "auto", registry=None, runtime: str = "auto", threads: int | None = None) -> "Predictor":
        """From an exported model (a folder ``inspector export`` wrote), a model file path or a
        registry name (``name`` or ``name@vN``)."""
        from inspector.engine.exported import ExportedModel, is_exported

        if is_exported(ref):
            return cls(ExportedModel.load(ref), device, runtime, threads)
        from inspector.engine.bundle import ModelBundle
        from inspector.engine.registry import ModelRegistry

        path = (registry or ModelRegistry()).resolve(ref)
        return cls(ModelBundle.load(path), device, runtime, threads)

    # --- scoring ----------------------------------------------------------------------------
    def predict(self, image: np.ndarray, path: Path | None = None, reconstruct: bool = True) -> Prediction:
        return self.predict_batch([image], paths=[path], reconstruct=reconstruct)[0]

    def predict_batch(
        self, images: Sequence[np.ndarray], paths: Sequence[Path | None] | None = None, reconstruct: bool = True
    ) -> list[Prediction]:
        """Score images of any size together (grouped by model input size; a tiled model's tiles
        in batches of at most ``TILE_BATCH``). Without ``reconstruct`` the prediction has no
        reconstruction and a method that makes it apart from its score skips that work."""
        started = time.perf_counter()
        prepared = [self._prepare(im) for im in images]
        inputs = [(i, k, x) for i, p in enumerate(prepared) for k, x in enumerate(p.inputs)]
        outputs: list[list] = [[None] * len(p.inputs) for p in prepared]
        groups: dict[tuple, list[tuple[int, int, np.ndarray]]] = {}
        for item in inputs:
            groups.setdefault(item[2].shape, []).append(item)
        for group in groups.values():
            for start in range(0, len(group), TILE_BATCH):
                chunk = group[start : start + TILE_BATCH]
                out = self.backend.score(to_array([x for _, _, x in chunk]), reconstruct)
                for j, (i, k, _) in enumerate(chunk):
                    outputs[i][k] = (out.scores[j], out.maps[j], None if out.reconstructions is None else out.reconstructions[j])
        results = [self._result(images[i], outputs[i], prepared[i]) for i in range(len(images))]
        elapsed = (time.perf_counter() - started) * 1000 / max(len(images), 1)
        for i, r in enumerate(results):
            r.elapsed_ms = elapsed
            r.path = paths[i] if paths else None
        return results

    def predict_paths(
        self,
        paths: Iterable[Path],
        batch_size: int = 16,
        cancel: CancelToken | None = None,
        progress: Callable[[Progress], None] | None = None,
        reconstruct: bool = True,
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
                    self.predict_batch([im for _, im in batch], [p for p, _ in batch], reconstruct)
                )
            except Exception:  # noqa: BLE001 — find the image that failed; the others are scored
                predictions = [self._predict_one(im, p, reconstruct) for p, im in batch]
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

    def _predict_one(self, image: np.ndarray, path: Path, reconstruct: bool = True) -> Prediction | ScoreError:
        try:
            return self.predict_batch([image], [path], reconstruct)[0]
        except MemoryError:
            return ScoreError(path, f"not enough memory to score a {image.shape[1]}×{image.shape[0]} image")
        except Exception as e:  # noqa: BLE001 — reported with the file, the run carries on
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            return ScoreError(path, f"{type(e).__name__}: {lines[-1][:200] if lines else ''}".rstrip(": "))

    def score_at_model_size(self, images: Sequence[np.ndarray], batch_size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
        """Scores and model-resolution maps of images already at the model's input size (calibration,
        benchmarks). Not for a tiled model, whose parts are whole frames (``predict_batch``)."""
        if self.info.tiling is not None:
            raise ValueError("a tiled model scores whole frames: use predict_batch")
        scores, maps = [], []
        for i in range(0, len(images), batch_size):
            out = self.backend.score(to_array([self._prepare(im).inputs[0] for im in images[i : i + batch_size]]), False)
            scores.append(out.scores)
            maps.extend(out.maps)
        return np.concatenate(scores) if scores else np.zeros(0), maps

    # --- internals --------------------------------------------------------------------------
    def _prepare(self, image: np.ndarray) -> _Prepared:
        """Model inputs: the image, each of its tiles, or the image turned and moved onto the
        alignment's reference (the warp and the confidence come along to move the map back)."""
        tiling, channels = self.info.tiling, self.info.channels
        if tiling is not None:
            tiles, boxes = tiling.cut(image)
            return _Prepared([resize_to_model(t, self.info.image_size, channels) for t in tiles], boxes=boxes)
        x = resize_to_model(image, self.info.image_size, channels)
        if self.info.alignment is None:
            return _Prepared([x])
        x, matrix, confidence = self.info.alignment.align(x)
        return _Prepared([x], matrix=matrix, confidence=confidence)

    def _result(self, image: np.ndarray, outputs: list[tuple[float, np.ndarray, np.ndarray]], prepared: _Prepared) -> Prediction:
        h, w = image.shape[:2]
        if prepared.boxes is not None:  # a tiled part: its highest tile, the maps stitched at full size
            score = max(float(s) for s, _, _ in outputs)
            def stitched(images: list[np.ndarray]) -> np.ndarray:
                sized = [cv2.resize(m, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR).astype(np.float32)
                         for m, (y0, x0, y1, x1) in zip(images, prepared.boxes)]
                return self.info.tiling.stitch(sized, prepared.boxes, h, w)

            amap = stitched([m for _, m, _ in outputs]).astype(np.float32)
            recon = None if outputs[0][2] is None else np.clip(stitched([r for _, _, r in outputs]) + 0.5, 0, 255).astype(np.uint8)
        else:
            score, amap, recon = outputs[0]
        if prepared.matrix is not None:  # made in the reference's frame: back onto the part as it lay
            amap = unwarp(amap, prepared.matrix)
            recon = None if recon is None else unwarp(recon, prepared.matrix)
        if amap.shape != (h, w):
            amap = cv2.resize(amap, (w, h), interpolation=cv2.INTER_LINEAR)
            recon = None if recon is None else cv2.resize(recon, (w, h), interpolation=cv2.INTER_LINEAR)
        confidence = prepared.confidence
        scale = self.info.map_scale
        heat = np.clip((amap - scale["low"]) / max(scale["high"] - scale["low"], 1e-12), 0, 1).astype(np.float32)
        # a part not put where the model saw good ones cannot be judged: it ranks above every part
        unaligned = confidence is not None and not self.info.alignment.aligned(confidence)
        return Prediction(math.inf if unaligned else float(score), self.threshold, amap.astype(np.float32), heat, recon, image,
                          rules=self.info.rules, alignment_confidence=confidence, unaligned=unaligned)
