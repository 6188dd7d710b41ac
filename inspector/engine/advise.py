"""Which method for these parts? Quick versions of a few candidates, trained on the user's good
images and compared on images none of them trained on.

The good training images are split once (seeded): most train every candidate, the rest are
held out. Synthetic defects of several kinds are painted on the held-out good images (with
masks); the dataset's labelled defects, when it has some, are scored too. Each candidate is
trained through the one ``Trainer`` and scored through the one ``Predictor``, so the figures are
those the app would show. The recommendation ranks by the real defects when there are any,
else by the synthetic ones, and among results within ``TIE_AUROC`` of the best picks the
fastest to train.

What synthetic defects can predict: whether a method sees painted scratches, blobs, cracks and
stains on these parts, and how many good parts it flags. They cannot predict how it sees the
user's real defects, which may be subtler or of another kind: labelled real defects decide when
the folder has them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from inspector.data.datasets import DEFECT, Dataset
from inspector.data.images import ImageReadError, read_image
from inspector.data.synthetic import VISIBLE_KINDS, make_defect_set
from inspector.engine.events import CancelToken, Progress
from inspector.engine.metrics import auroc, false_alarm_at_recall, pixel_auroc
from inspector.engine.predictor import Predictor
from inspector.engine.trainer import TrainConfig, Trainer
from inspector.models import method_names

#: AUROCs closer than this to the best count as a tie, which the faster method wins
TIE_AUROC = 0.02
#: good images held out for the comparison (the rest train every candidate)
HOLDOUT_FRACTION = 0.25
#: at most this many good images train a quick candidate: quick means minutes on a CPU
MAX_TRAIN_IMAGES = 300


@dataclass(frozen=True)
class Candidate:
    """One quick training setting of a method."""

    method: str
    image_size: int = 64
    epochs: int = 5
    params: dict = field(default_factory=dict)


#: the candidates (quick settings: seconds to a few minutes each on a CPU); one not registered is left out
CANDIDATES: tuple[Candidate, ...] = (
    Candidate("patchcore", image_size=128, epochs=1),
    Candidate("padim", image_size=128, epochs=1),
    Candidate("ganomaly", image_size=64, epochs=8),
    Candidate("seg-skip-ganomaly", image_size=64, epochs=4),
)


@dataclass
class CandidateResult:
    method: str
    image_size: int
    epochs: int
    synthetic_auroc: float
    pixel_auroc: float
    labelled_auroc: float  # NaN without labelled defects
    false_alarm_at_90: float  # on the deciding defects (labelled, else synthetic)
    train_s: float
    ms_per_image: float
    error: str = ""  # why this candidate could not be compared (then every figure is NaN)

    @property
    def deciding_auroc(self) -> float:
        return self.labelled_auroc if not math.isnan(self.labelled_auroc) else self.synthetic_auroc


@dataclass
class Advice:
    results: list[CandidateResult]
    recommended: str | None
    reason: str
    n_train: int
    n_holdout_good: int
    n_synthetic: int
    n_labelled: int
    caveat: str = (
        "Synthetic defects show whether a method sees painted scratches, blobs, cracks and stains on these parts; "
        "they cannot predict how it sees your real defects. Label some real defects (test/<kind>/ folders or labels.csv) "
        "and they decide."
    )

    def to_dict(self) -> dict:
        return {**asdict(self), "results": [asdict(r) for r in self.results]}


class AdviseError(ValueError):
    """The folder cannot be compared on (too few good images)."""


def candidates_available(wanted: Sequence[str] | None = None) -> list[Candidate]:
    """The registered candidates, or those named in ``wanted`` (unknown names are an AdviseError)."""
    registered = set(method_names())
    if wanted:
        unknown = [m for m in wanted if m not in registered]
        if unknown:
            raise AdviseError(f"unknown method(s): {', '.join(unknown)}; available: {', '.join(method_names())}")
        known = {c.method: c for c in CANDIDATES}
        return [known.get(m, Candidate(m)) for m in wanted]
    return [c for c in CANDIDATES if c.method in registered]


def advise(
    dataset: Dataset,
    candidates: Sequence[Candidate] | None = None,
    seed: int = 0,
    device: str = "auto",
    on_progress: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
) -> Advice:
    """Train each candidate quickly on ``dataset``'s good images and recommend one."""
    cancel = cancel or CancelToken()
    candidates = list(candidates) if candidates is not None else candidates_available()
    goods = sorted(s.path for s in dataset.train)
    if len(goods) < 8:
        raise AdviseError(f"advise needs at least 8 good training images to compare methods, found {len(goods)}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(goods))
    n_holdout = max(4, int(round(HOLDOUT_FRACTION * len(goods))))
    holdout_paths = [goods[i] for i in order[:n_holdout]]
    train_paths = [goods[i] for i in order[n_holdout:]][:MAX_TRAIN_IMAGES]
    holdout = _readable(holdout_paths)
    if len(holdout) < 2:
        raise AdviseError("advise could not read enough held-out good images")
    painted = make_defect_set(holdout, max(len(holdout), 32), seed=seed, kinds=VISIBLE_KINDS)
    labelled = _readable([s.path for s in dataset.test if s.label == DEFECT])

    results = []
    for i, candidate in enumerate(candidates):
        cancel.raise_if_cancelled()
        if on_progress is not None:
            on_progress(Progress(i, len(candidates), f"training {candidate.method} ({i + 1} of {len(candidates)})"))
        results.append(_try(candidate, train_paths, holdout, painted, labelled, seed, device, cancel))
    if on_progress is not None:
        on_progress(Progress(len(candidates), len(candidates), "done"))
    recommended, reason = _recommend(results, bool(labelled))
    return Advice(results, recommended, reason, len(train_paths), len(holdout), len(painted), len(labelled))


def _readable(paths: Sequence[Path]) -> list[np.ndarray]:
    images = []
    for path in paths:
        try:
            images.append(read_image(path))
        except ImageReadError:
            continue  # the Data page lists unreadable files; a comparison does without them
    return images


def _try(candidate: Candidate, train_paths, holdout, painted, labelled, seed: int, device: str, cancel: CancelToken) -> CandidateResult:
    try:
        return _compare(candidate, train_paths, holdout, painted, labelled, seed, device, cancel)
    except (ValueError, RuntimeError, MemoryError) as e:  # one candidate failing must not lose the others
        nan = float("nan")
        return CandidateResult(candidate.method, candidate.image_size, candidate.epochs, nan, nan, nan, nan, nan, nan,
                               error=str(e).splitlines()[0][:200] if str(e) else type(e).__name__)


def _compare(candidate: Candidate, train_paths, holdout, painted, labelled, seed: int, device: str, cancel: CancelToken) -> CandidateResult:
    channels = 3 if any(im.ndim == 3 for im in holdout) else 1
    config = TrainConfig(method=candidate.method, image_size=candidate.image_size, channels=channels, epochs=candidate.epochs,
                         seed=seed, device=device, params=dict(candidate.params))
    started = time.perf_counter()
    bundle = Trainer(config, cancel=cancel).fit(train_paths, {"dataset": "advise"})
    train_s = time.perf_counter() - started
    predictor = Predictor(bundle, device)

    def scores(images: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        out_scores, out_maps = [], []
        for j in range(0, len(images), 16):
            cancel.raise_if_cancelled()
            for p in predictor.predict_batch(images[j : j + 16]):
                out_scores.append(p.score)
                out_maps.append(p.anomaly_map)
        return np.asarray(out_scores, dtype=np.float64), out_maps

    timed = time.perf_counter()
    good, _ = scores(holdout)
    ms = (time.perf_counter() - timed) * 1000 / max(len(holdout), 1)
    bad, bad_maps = scores([im for im, _ in painted])
    synthetic = _auroc(good, bad)
    pixel = pixel_auroc([m for _, m in painted], bad_maps)
    real = scores(labelled)[0] if labelled else np.zeros(0)
    labelled_auroc = _auroc(good, real) if labelled else float("nan")
    deciding = real if labelled else bad
    labels = np.r_[np.zeros(good.size), np.ones(deciding.size)]
    far = false_alarm_at_recall(labels, np.r_[good, deciding], 0.9)
    return CandidateResult(candidate.method, candidate.image_size, candidate.epochs, synthetic, pixel, labelled_auroc, far, train_s, ms)


def _auroc(good: np.ndarray, bad: np.ndarray) -> float:
    return auroc(np.r_[np.zeros(good.size), np.ones(bad.size)], np.r_[good, bad])


def _recommend(results: list[CandidateResult], has_labelled: bool) -> tuple[str | None, str]:
    usable = [r for r in results if not r.error and math.isfinite(r.deciding_auroc)]
    if not usable:
        return None, "no candidate could be trained and compared on this folder (see the errors in the table)"
    best = max(r.deciding_auroc for r in usable)
    tied = [r for r in usable if r.deciding_auroc >= best - TIE_AUROC]
    pick = min(tied, key=lambda r: r.train_s)
    on = "your labelled defects" if has_labelled else "synthetic defects painted on your held-out good images"
    reason = f"{pick.method}: image AUROC {pick.deciding_auroc:.3f} on {on}"
    if len(tied) > 1:
        others = ", ".join(r.method for r in tied if r is not pick)
        reason += f", within {TIE_AUROC} of the best; the fastest to train of those ({pick.train_s:.0f} s against {others})"
    else:
        runner_up = max((r for r in usable if r is not pick), key=lambda r: r.deciding_auroc, default=None)
        if runner_up is not None:
            reason += f", ahead of {runner_up.method} ({runner_up.deciding_auroc:.3f})"
    return pick.method, reason
