"""Evaluate a model on a dataset's test split through the one Predictor, and write a report folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from inspector.data.datasets import DEFECT, GOOD, Dataset, Sample
from inspector.data.images import ImageReadError, read_image
from inspector.engine import metrics
from inspector.engine.events import CancelToken, Progress
from inspector.engine.predictor import Prediction, Predictor, RegionEntry


@dataclass
class ScoredSample:
    sample: Sample
    score: float
    decision: str
    regions: RegionEntry | None = None  # with region rules: what the rules judge besides the score


@dataclass
class Evaluation:
    model: str
    dataset: str
    threshold: float
    metrics: metrics.DetectionMetrics | None
    pixel_auroc: float | None
    rows: list[ScoredSample]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def labels_scores(self) -> tuple[np.ndarray, np.ndarray]:
        rows = [r for r in self.rows if r.sample.label in (GOOD, DEFECT)]
        return np.array([r.sample.label for r in rows]), np.array([r.score for r in rows])

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "threshold": self.threshold,
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "pixel_auroc": self.pixel_auroc,
            "n_scored": len(self.rows),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def evaluate(
    predictor: Predictor,
    dataset: Dataset,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
    on_prediction: Callable[[Sample, Prediction], None] | None = None,
) -> Evaluation:
    """Score every test sample; metrics at the predictor's threshold; pixel AUROC where masks exist."""
    by_path = {s.path: s for s in dataset.test}
    with_masks = any(s.mask_path is not None for s in dataset.test)
    rows: list[ScoredSample] = []
    skipped: list[tuple[str, str]] = []
    masks, maps = [], []
    for path, result in predictor.predict_paths(list(by_path), cancel=cancel, progress=progress):
        sample = by_path[path]
        if isinstance(result, ImageReadError):
            skipped.append((str(path), result.reason))
            continue
        entry = result.region_entry if predictor.info.rules is not None else None
        rows.append(ScoredSample(sample, result.score, result.decision, entry))
        if with_masks and (sample.mask_path is not None or sample.label == GOOD):
            try:  # good images count as all-negative pixels, as in the MVTec AD protocol
                mask = read_image(sample.mask_path, channels=1) if sample.mask_path else None
            except ImageReadError as e:
                skipped.append((str(sample.mask_path), e.reason))
            else:
                small_map = _shrink(result.anomaly_map)
                masks.append(_shrink(mask, small_map.shape) if mask is not None else np.zeros(small_map.shape, np.uint8))
                maps.append(small_map)
        if on_prediction is not None:
            on_prediction(sample, result)
    ev = Evaluation(predictor.info.ref, dataset.name, predictor.threshold, None, None, rows, skipped)
    labels, scores = ev.labels_scores()
    if labels.size:
        ev.metrics = metrics.detection_metrics(labels, scores, predictor.threshold)
    if any(m.any() for m in masks):
        ev.pixel_auroc = metrics.pixel_auroc(masks, maps)
    return ev


def _shrink(array: np.ndarray, shape: tuple[int, int] | None = None, side: int = 256) -> np.ndarray:
    """Bound the memory pixel AUROC needs: maps and masks at most ``side`` pixels on their longer side."""
    h, w = array.shape[:2]
    if shape is None:
        f = min(1.0, side / max(h, w))
        shape = (max(1, round(h * f)), max(1, round(w * f)))
    if (h, w) == shape:
        return array
    return cv2.resize(array, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST if array.dtype == np.uint8 else cv2.INTER_AREA)
