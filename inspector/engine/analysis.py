"""Threshold analysis of one model on one dataset (what the app's evaluate and models pages show).

A :class:`ScoreSet` holds one model's scores on one dataset's test images, labelled good (0)
or defect (1). With real defects it comes straight from ``engine.evaluate``. A dataset with
good images only gets synthetic defects painted onto its held-out good test images
(``data.make_defect_set``), scored through the same ``Predictor``, so the page can still show
the false-alarm rate on good parts and how many defects the threshold would catch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inspector.data.datasets import DEFECT, GOOD, Dataset
from inspector.data.images import load_images
from inspector.data.synthetic import make_defect_set
from inspector.engine.events import CancelToken, Progress
from inspector.engine.metrics import DetectionMetrics, detection_metrics, roc_curve

MAX_SYNTHETIC = 256
SYNTHETIC_BATCH = 16


@dataclass
class ScoreSet:
    model: str
    dataset: str
    threshold: float  # the threshold the model was scored with (the model's)
    labels: np.ndarray  # 0 good, 1 defect
    scores: np.ndarray
    names: list[str]  # one per score: file name, or "synthetic <kind> on <file>"
    synthetic: bool  # True: the defects are synthetic (the dataset has good images only)
    scores_by_path: dict[Path, float] = field(default_factory=dict)  # every scored file, any label
    skipped: list[tuple[str, str]] = field(default_factory=list)
    pixel_auroc: float | None = None
    ms_per_image: float = float("nan")
    # with region rules: each score's region areas and map-finite flag (its order), and each scored file's
    region_entries: list[tuple[tuple[float, ...], bool]] | None = None
    regions_by_path: dict[Path, tuple[tuple[float, ...], bool]] = field(default_factory=dict)

    @property
    def n_good(self) -> int:
        return int(np.sum(self.labels == 0))

    @property
    def n_defect(self) -> int:
        return int(np.sum(self.labels == 1))

    def at(self, threshold: float) -> DetectionMetrics:
        return detection_metrics(self.labels, self.scores, threshold)

    def roc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return roc_curve(self.labels, self.scores)

    def good_scores(self) -> np.ndarray:
        return self.scores[self.labels == 0]

    def defect_scores(self) -> np.ndarray:
        return self.scores[self.labels == 1]


def score_dataset(
    predictor,
    dataset: Dataset,
    report: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
    seed: int = 0,
) -> ScoreSet:
    """Evaluate on the test split; add synthetic defects when the split has no real ones."""
    import time

    from inspector.engine.evaluate import evaluate

    report = report or (lambda p: None)
    cancel = cancel or CancelToken()
    if not dataset.test:
        raise ValueError(f"'{dataset.name}' has no test images: add a test/ folder, or more images to split")
    started = time.perf_counter()
    ev = evaluate(predictor, dataset, progress=lambda p: report(Progress(p.done, p.total, "scoring test images")), cancel=cancel)
    elapsed = time.perf_counter() - started
    rows = [r for r in ev.rows if r.sample.label in (GOOD, DEFECT)]
    result = ScoreSet(
        model=ev.model,
        dataset=ev.dataset,
        threshold=ev.threshold,
        labels=np.array([int(r.sample.label == DEFECT) for r in rows], dtype=np.int64),
        scores=np.array([r.score for r in rows], dtype=np.float64),
        names=[r.sample.path.name for r in rows],
        synthetic=False,
        scores_by_path={r.sample.path: r.score for r in ev.rows},
        skipped=list(ev.skipped),
        pixel_auroc=ev.pixel_auroc,
        ms_per_image=1000 * elapsed / max(len(ev.rows), 1),
    )
    if predictor.info.rules is not None:
        result.region_entries = [r.regions for r in rows]
        result.regions_by_path = {r.sample.path: r.regions for r in ev.rows}
    if result.n_defect:
        return result
    if not result.n_good:
        raise ValueError(f"'{dataset.name}' has no labelled test images (good or defect) to evaluate on")
    return _add_synthetic(result, predictor, [r.sample.path for r in rows], report, cancel, seed)


def _add_synthetic(result: ScoreSet, predictor, good_paths: list[Path], report, cancel: CancelToken, seed: int) -> ScoreSet:
    """Paint defects on the held-out good images and score them (in small batches: bounded memory)."""
    images, read = load_images(good_paths[:MAX_SYNTHETIC])
    sources = [p.name for p in read.ok]
    n = min(max(len(images), 32), MAX_SYNTHETIC)
    scores, names = [], []
    rng = np.random.default_rng(seed)
    for start in range(0, n, SYNTHETIC_BATCH):
        cancel.raise_if_cancelled()
        count = min(SYNTHETIC_BATCH, n - start)
        picks = rng.integers(len(images), size=count)
        pairs = make_defect_set([images[i] for i in picks], count, seed=seed + start)
        predictions = predictor.predict_batch([image for image, _ in pairs])
        scores += [p.score for p in predictions]
        if result.region_entries is not None:
            result.region_entries += [p.region_entry for p in predictions]
        names += [f"synthetic defect on {sources[i]}" for i in picks]
        report(Progress(start + count, n, "scoring synthetic defects"))
    result.labels = np.r_[result.labels, np.ones(len(scores), dtype=np.int64)]
    result.scores = np.r_[result.scores, np.array(scores)]
    result.names += names
    result.synthetic = True
    return result
