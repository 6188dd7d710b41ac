"""Operator feedback and one-click retraining.

Feedback. On any live result the operator says "good — false alarm" or "defect — confirmed".
The verdict is written to the results store (``feedback`` column) and the frame's inspected
image is copied into the model's **feedback pool**::

    <data dir>/pools/<model name>/good/      false alarms: new good samples for the next version
    <data dir>/pools/<model name>/defects/   confirmed defects: to check every new version against

The pool belongs to the model *name* (all its versions), lives in the app's data folder next to
the models (so it survives restarts and does not need write access to the dataset), and is
plain image files: an operator can look at it, and delete a wrong entry, in a file manager.

Retraining (``Retrainer.run``, meant for a worker thread; live inspection goes on meanwhile):

1. fine-tune the version in use on its original good images plus the pool's good images
   (repeated so that they make up about ``pool_share`` of what the model sees: a handful of
   false alarms among thousands of images would otherwise change nothing);
2. calibrate the new threshold on good images that neither version trained on (the dataset's
   test/good images, first half); the original images cannot serve, the parent has seen them
   and would make the threshold too low;
3. store it as a *candidate* version in the registry (parent = the version in use, and the data
   it saw recorded in its ``training`` metadata), not yet in use;
4. compare current and new on the same held-out good images (the other half), the confirmed
   defects and synthetic defects painted on the held-out images: false-alarm rate, detection
   rates, AUROC where defined, plus how many of the marked false alarms each still flags.

The operator then promotes the candidate (``promote``: it becomes the version in use; a running
live loop swaps to it) or discards it (``discard``: deleted); ``promote`` also puts any earlier
version back in use (a roll back is the same operation).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspector.atomic import remove_stale_temp_files
from inspector.data.datasets import GOOD, DatasetError, open_dataset
from inspector.data.images import list_images, load_images, write_image
from inspector.data.synthetic import make_defect_set
from inspector.engine import metrics, paths
from inspector.engine.bundle import ModelBundle
from inspector.engine.decision import ng_mask
from inspector.engine.events import CancelToken
from inspector.engine.modelref import check_name, inside, ref_text
from inspector.engine.predictor import Predictor
from inspector.engine.registry import Entry, ModelRegistry, RegistryError
from inspector.engine.results_store import ResultsStore
from inspector.engine.threshold import Threshold, ThresholdMode, calibrate, synthetic_defects
from inspector.engine.trainer import Event, TrainConfig, Trainer
from inspector.engine.workflow import STALE_TEMP_S

FALSE_ALARM = "false_alarm"
CONFIRMED = "confirmed"


class RetrainError(Exception):
    pass


# --- the feedback pool ------------------------------------------------------------------------------
def pools_dir() -> Path:
    return paths.data_dir() / "pools"


class FeedbackPool:
    """The images operators marked for one model name: ``good/`` (false alarms) and ``defects/``."""

    def __init__(self, model_name: str, root: Path | None = None) -> None:
        self.model_name = check_name(model_name)  # the name may come from a model file: never a path
        self.folder = Path(root) if root else inside(pools_dir(), model_name)
        self.good_dir = self.folder / "good"
        self.defect_dir = self.folder / "defects"

    def add(self, image: np.ndarray, feedback: str, key: str) -> Path:
        """Keep ``image`` as a good sample (``false_alarm``) or a confirmed defect; ``key`` names
        the file, so marking the same result again replaces it (and moves it if the verdict changed)."""
        if feedback not in (FALSE_ALARM, CONFIRMED):
            raise ValueError(f"feedback must be '{FALSE_ALARM}' or '{CONFIRMED}', got {feedback!r}")
        self.remove(key)
        target = (self.good_dir if feedback == FALSE_ALARM else self.defect_dir) / f"{_safe(key)}.png"
        write_image(target, image)
        return target

    def remove(self, key: str) -> bool:
        removed = False
        for folder in (self.good_dir, self.defect_dir):
            path = folder / f"{_safe(key)}.png"
            if path.exists():
                path.unlink()
                removed = True
        return removed

    def good_paths(self) -> list[Path]:
        return list_images(self.good_dir) if self.good_dir.is_dir() else []

    def defect_paths(self) -> list[Path]:
        return list_images(self.defect_dir) if self.defect_dir.is_dir() else []

    def counts(self) -> dict[str, int]:
        return {"good": len(self.good_paths()), "defects": len(self.defect_paths())}


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:120]


def feedback_key(store: ResultsStore, row_id: int) -> str:
    """A pool file name for a store row that is unique across databases."""
    tag = hashlib.sha1(str(store.path.resolve()).encode()).hexdigest()[:8]
    return f"r{row_id:08d}-{tag}"


def give_feedback(
    store: ResultsStore,
    row_id: int,
    feedback: str | None,
    image: np.ndarray | None = None,
    pool: FeedbackPool | None = None,
) -> Path | None:
    """Record the operator's verdict on a result and put its image into the model's pool.

    ``image`` is the inspected image (needed when the store kept none for this row, e.g. an OK
    frame that was not sampled). ``feedback=None`` withdraws a verdict. Returns the pool file.
    """
    row = store.set_feedback(row_id, feedback, image)
    pool = pool or FeedbackPool(row.model)
    key = feedback_key(store, row_id)
    if feedback is None:
        pool.remove(key)
        return None
    picture = image if image is not None else store.load_image(row)
    if picture is None:
        raise RetrainError(f"result {row_id} has no image to learn from")
    return pool.add(picture, feedback, key)


# --- what a retrain learns from ----------------------------------------------------------------------
@dataclass
class RetrainData:
    """The images of a retrain: originals (what the parent trained on) and fresh good images
    neither version trains on, split into a calibration half and a comparison half."""

    originals: list[Path]
    calibration: list[Path]
    comparison: list[Path]
    description: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_paths(cls, originals: Sequence[Path], holdout: Sequence[Path], seed: int = 0, **description) -> "RetrainData":
        """Split ``holdout`` (good images never trained on) into calibration and comparison halves."""
        holdout = sorted(Path(p) for p in holdout)
        if len(holdout) < 4:
            raise RetrainError(
                f"retraining needs at least 4 good images that were never trained on (found {len(holdout)}): "
                "they set the new threshold and compare the versions"
            )
        order = np.random.default_rng(seed).permutation(len(holdout))
        half = len(holdout) // 2
        calibration = sorted(holdout[i] for i in order[:half])
        comparison = sorted(holdout[i] for i in order[half:])
        return cls([Path(p) for p in originals], calibration, comparison, dict(description))

    @classmethod
    def for_model(cls, info) -> "RetrainData":
        """From the dataset a registered model was trained on (its ``training.dataset_root``)."""
        training = info.training or {}
        root = training.get("dataset_root") or training.get("retrain", {}).get("dataset_root")
        if not root:
            raise RetrainError(
                f"{info.ref} does not say which dataset it was trained on; retrain it with explicit images "
                "(RetrainData.from_paths)"
            )
        seed = int(training.get("config", {}).get("seed", 0))
        try:
            dataset = open_dataset(root, seed=seed)
        except DatasetError as e:
            raise RetrainError(f"the dataset of {info.ref} is not available any more: {e}") from None
        holdout = [s.path for s in dataset.test if s.label == GOOD]
        return cls.from_paths(
            [s.path for s in dataset.train], holdout, seed=seed,
            dataset=dataset.name, dataset_root=str(dataset.root), layout=dataset.layout,
            fingerprint=dataset.fingerprint(), counts=dataset.counts(),
        )


def files_fingerprint(files: Sequence[Path]) -> str:
    """Short hash of file names and sizes (as the dataset fingerprint does)."""
    lines = []
    for p in files:
        try:
            size = Path(p).stat().st_size
        except OSError:
            size = -1
        lines.append(f"{Path(p).name}\t{size}\n")
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()[:16]


# --- comparison -----------------------------------------------------------------------------------------
@dataclass
class VersionScores:
    """One version on the comparison images (rates are None where there is nothing to measure)."""

    model: str
    threshold: float
    false_alarm_rate: float | None  # held-out good images flagged NG
    confirmed_detection_rate: float | None  # operator-confirmed defects flagged NG
    synthetic_detection_rate: float | None
    auroc_confirmed: float | None  # held-out good vs confirmed defects
    auroc_synthetic: float | None  # held-out good vs synthetic defects
    marked_still_flagged: int | None  # marked false alarms this version still flags
    n_marked: int = 0


@dataclass
class Comparison:
    current: VersionScores
    new: VersionScores
    n_good: int
    n_confirmed: int
    n_synthetic: int

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(measure, current, new, which is better) for a table; rates in percent."""

        def pct(v):
            return "n/a" if v is None else f"{100 * v:.1f} %"

        def num(v):
            return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

        def better(a, b, higher_is_better: bool) -> str:
            if a is None or b is None or (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
                return ""
            if abs(a - b) < 1e-9:
                return "same"
            return "new" if (b > a) == higher_is_better else "current"

        c, n = self.current, self.new
        return [
            (f"false alarms on {self.n_good} held-out good images", pct(c.false_alarm_rate), pct(n.false_alarm_rate),
             better(c.false_alarm_rate, n.false_alarm_rate, False)),
            (f"detected of {self.n_confirmed} confirmed defects", pct(c.confirmed_detection_rate), pct(n.confirmed_detection_rate),
             better(c.confirmed_detection_rate, n.confirmed_detection_rate, True)),
            (f"detected of {self.n_synthetic} synthetic defects", pct(c.synthetic_detection_rate), pct(n.synthetic_detection_rate),
             better(c.synthetic_detection_rate, n.synthetic_detection_rate, True)),
            ("AUROC good vs confirmed defects", num(c.auroc_confirmed), num(n.auroc_confirmed),
             better(c.auroc_confirmed, n.auroc_confirmed, True)),
            ("AUROC good vs synthetic defects", num(c.auroc_synthetic), num(n.auroc_synthetic),
             better(c.auroc_synthetic, n.auroc_synthetic, True)),
            (f"marked false alarms still flagged (of {c.n_marked})",
             "n/a" if c.marked_still_flagged is None else str(c.marked_still_flagged),
             "n/a" if n.marked_still_flagged is None else str(n.marked_still_flagged),
             better(c.marked_still_flagged, n.marked_still_flagged, False)),
            ("threshold", f"{c.threshold:.4g}", f"{n.threshold:.4g}", ""),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"current": asdict(self.current), "new": asdict(self.new), "n_good": self.n_good,
                "n_confirmed": self.n_confirmed, "n_synthetic": self.n_synthetic}


def compare(
    current: Predictor,
    new: Predictor,
    good: Sequence[Path],
    confirmed: Sequence[Path] = (),
    marked_good: Sequence[Path] = (),
    n_synthetic: int = 32,
    seed: int = 0,
) -> Comparison:
    """Both versions on the same images, each at its own threshold."""
    good_images, _ = load_images(good)
    if not good_images:
        raise RetrainError("no readable held-out good images to compare on")
    confirmed_images, _ = load_images(confirmed)
    marked_images, _ = load_images(marked_good)
    synthetic = [image for image, _ in make_defect_set(good_images, n_synthetic, seed=seed)] if n_synthetic else []
    return Comparison(
        _scores(current, good_images, confirmed_images, synthetic, marked_images),
        _scores(new, good_images, confirmed_images, synthetic, marked_images),
        len(good_images), len(confirmed_images), len(synthetic),
    )


def _scores(predictor: Predictor, good, confirmed, synthetic, marked) -> VersionScores:
    def score(images):
        return np.array([p.score for p in predictor.predict_batch(images)]) if images else np.zeros(0)

    t = predictor.threshold
    g, c, s, m = score(good), score(confirmed), score(synthetic), score(marked)

    def rate(x):
        return float(np.mean(ng_mask(x, t))) if x.size else None

    def auc(bad):
        if not bad.size or not g.size:
            return None
        return float(metrics.auroc(np.r_[np.zeros(g.size), np.ones(bad.size)], np.r_[g, bad]))

    return VersionScores(
        predictor.info.ref, float(t), rate(g), rate(c), rate(s), auc(c), auc(s),
        int(np.sum(ng_mask(m, t))) if m.size else None, int(m.size),
    )


# --- the retrain itself ---------------------------------------------------------------------------------
@dataclass
class RetrainResult:
    entry: Entry  # the new candidate version (not in use yet)
    parent: Entry  # the version it was fine-tuned from
    comparison: Comparison


class Retrainer:
    """Fine-tunes the version in use of ``model_name`` into a new candidate version.

    Call ``run()`` from a worker thread; training events arrive through ``on_event`` and
    ``cancel`` stops it (nothing is added to the registry then).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        model_name: str,
        pool: FeedbackPool | None = None,
        data: RetrainData | None = None,
        epochs: int | None = None,
        pool_share: float = 0.25,
        n_synthetic: int = 32,
        device: str = "auto",
        on_event: Callable[[Event], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self.registry = registry
        self.model_name = model_name
        self.pool = pool or FeedbackPool(model_name)
        self.data = data
        self.epochs = epochs
        self.pool_share = pool_share
        self.n_synthetic = n_synthetic
        self.device = device
        self.on_event = on_event
        self.cancel = cancel or CancelToken()

    def run(self) -> RetrainResult:
        parent = self.registry.active(self.model_name)
        remove_stale_temp_files(self.registry.folder(self.model_name), STALE_TEMP_S)  # left by a killed save
        parent_bundle = ModelBundle.load(parent.path)
        info = parent_bundle.info
        data = self.data or RetrainData.for_model(info)
        pool_good, pool_defects = self.pool.good_paths(), self.pool.defect_paths()
        if not data.originals and not pool_good:
            raise RetrainError("nothing to train on: no original good images and an empty pool")

        config = self._config(info)
        repeat = self._repeat(len(data.originals), len(pool_good))
        train_paths = list(data.originals) + list(pool_good) * repeat
        data_info = {
            **{k: v for k, v in data.description.items()},
            "retrain": {
                "parent": parent.info.ref if parent.info.name else ref_text(self.model_name, parent.version),
                "originals": {"n": len(data.originals), "fingerprint": files_fingerprint(data.originals)},
                "pool": {
                    "folder": str(self.pool.folder),
                    "good": [p.name for p in pool_good],
                    "confirmed_defects": [p.name for p in pool_defects],
                    "fingerprint": files_fingerprint(pool_good),
                    "repeat": repeat,
                },
                "calibration": {"n": len(data.calibration), "fingerprint": files_fingerprint(data.calibration)},
                "comparison": {"n": len(data.comparison), "fingerprint": files_fingerprint(data.comparison)},
            },
        }
        trainer = Trainer(config, on_event=self.on_event, cancel=self.cancel)
        bundle = trainer.fit(train_paths, data_info=data_info, init_from=parent_bundle)
        self.cancel.raise_if_cancelled()
        self._recalibrate(bundle, data.calibration, config)

        entry = self.registry.add(bundle, self.model_name, parent=ref_text(self.model_name, parent.version), activate=False)
        current = Predictor(parent_bundle, self.device)
        new = Predictor(bundle, self.device)
        comparison = compare(current, new, data.comparison, pool_defects, pool_good, self.n_synthetic, seed=config.seed)
        entry.info.metrics["retrain_comparison"] = comparison.to_dict()
        ModelBundle(bundle.model, entry.info).save(entry.path)  # the comparison travels with the version
        return RetrainResult(entry, parent, comparison)

    def _config(self, info) -> TrainConfig:
        stored = dict((info.training or {}).get("config") or {})
        known = set(TrainConfig.__dataclass_fields__)
        config = TrainConfig(**{k: v for k, v in stored.items() if k in known}) if stored else TrainConfig(
            method=info.method, image_size=info.image_size, channels=info.channels,
            params={k: v for k, v in info.config.items() if k not in ("image_size", "channels")},
        )
        config.epochs = self.epochs or max(3, math.ceil(config.epochs / 3))
        config.device = self.device
        return config

    def _repeat(self, n_originals: int, n_pool: int) -> int:
        """How often each pool image is shown per epoch so the pool is ~pool_share of the data."""
        if not n_pool:
            return 0
        want = self.pool_share * n_originals / max(1.0 - self.pool_share, 1e-6)
        return int(min(16, max(1, math.ceil(want / n_pool))))

    def _recalibrate(self, bundle: ModelBundle, calibration: Sequence[Path], config: TrainConfig) -> None:
        """The new threshold from good images neither version trained on (see the module notes)."""
        images, _ = load_images(calibration)
        if len(images) < 2:
            return  # keep the trainer's own calibration
        predictor = Predictor(bundle, self.device)
        good = np.array([p.score for p in predictor.predict_batch(images)])
        bad = None
        if config.threshold_mode == ThresholdMode.SYNTHETIC_F1:
            defects = [im for im, _ in synthetic_defects(images, seed=config.seed)]
            bad = np.array([p.score for p in predictor.predict_batch(defects)])
        threshold = calibrate(config.threshold_mode, good, config.false_alarm_rate, bad)
        threshold.params["calibrated_on"] = f"{len(images)} held-out good images never trained on (retrain)"
        old: Threshold = bundle.info.threshold
        threshold.params["trainer_threshold"] = old.value
        bundle.info.threshold = threshold
        bundle.info.metrics.setdefault("calibration", {})["retrain_holdout_false_alarm_rate"] = float(np.mean(ng_mask(good, threshold.value)))


# --- promote (or roll back) / discard -------------------------------------------------------------------------
def promote(registry: ModelRegistry, name: str, version: int) -> Entry:
    """Put a version in use: a candidate, or an earlier one to roll back to (one operation; a live
    run following ``name`` swaps to it)."""
    return registry.set_active(name, version)


def discard(registry: ModelRegistry, name: str, version: int) -> None:
    """Delete a candidate version; the version in use cannot be discarded."""
    if registry.active(name).version == version:
        raise RegistryError(f"{ref_text(name, version)} is in use; roll back to another version before discarding it")
    registry.delete(name, version)


def lineage(registry: ModelRegistry, name: str) -> list[dict[str, Any]]:
    """Every version with its parent and the data it saw, oldest first (for a versions list)."""
    active = registry.active(name).version if registry.versions(name) else None
    rows = []
    for e in registry.versions(name):
        training = e.info.training or {}
        retrain = training.get("retrain", {})
        rows.append({
            "version": e.version,
            "ref": ref_text(name, e.version),
            "parent": e.info.parent,
            "created": e.info.created,
            "active": e.version == active,
            "threshold": e.info.threshold.value,
            "dataset": training.get("dataset"),
            "n_train": training.get("n_train"),
            "pool_good": len(retrain.get("pool", {}).get("good", [])) if retrain else 0,
        })
    return rows

