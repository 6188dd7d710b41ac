"""What the pages share: the open dataset, the loaded model, THE threshold and the scores.

There is one threshold mechanism: :meth:`Session.set_threshold` changes ``predictor.threshold``
in memory and emits ``thresholdChanged``; every page that shows a decision recomputes it from
the score (``score > threshold`` = NG), so dragging the histogram line updates the OK/NG marks
everywhere at once. :meth:`Session.save_threshold` writes it as a new registry version.

A model with region rules decides by its regions too (``engine.decision.decide_with_rules``):
the pages that score images hand the regions' areas over with the scores (``add_scores``), and
``decision(score, path)`` uses them. :meth:`Session.save_rules` writes rules as a new version.

An exported model (a folder ``inspector export`` wrote) scores like any other, but it is
read-only: its parity was measured with its threshold and rules, so saving either is refused
(``ReadOnlyModel``, one line); a threshold can still be tried in memory.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from inspector.data.datasets import Dataset, open_dataset
from inspector.engine.decision import decide, decide_with_rules
from inspector.gui.workers import Job, run_job

log = logging.getLogger(__name__)


class ReadOnlyModel(ValueError):
    """Saving to an exported model: refused, the message says why in one line."""


class Session(QObject):
    datasetChanged = Signal()
    modelChanged = Signal()
    thresholdChanged = Signal(float)
    scoresChanged = Signal()
    unreadableChanged = Signal()
    registryChanged = Signal()  # a model was added, renamed or deleted
    error = Signal(str)  # something the user should read (also logged)
    info = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.dataset: Dataset | None = None
        self.predictor = None  # engine.predictor.Predictor, imported lazily (torch)
        self.scores: dict[Path, float] = {}  # the loaded model's scores on this dataset's files
        # with region rules: each scored file's region areas (largest first) and whether its map was finite
        self.region_areas: dict[Path, tuple[tuple[float, ...], bool]] = {}
        self.unreadable: dict[Path, str] = {}
        self._registry = None

    # --- data ---------------------------------------------------------------------------------
    def open_folder(self, folder: str | Path) -> Dataset:
        """Open a dataset folder (raises DatasetError with a readable message)."""
        dataset = open_dataset(Path(folder))
        self.set_dataset(dataset)
        return dataset

    def set_dataset(self, dataset: Dataset | None) -> None:
        self.dataset = dataset
        self.scores.clear()
        self.region_areas.clear()
        self.unreadable.clear()
        log.info("dataset: %s", dataset.root if dataset else None)
        self.datasetChanged.emit()
        self.scoresChanged.emit()
        self.unreadableChanged.emit()

    def samples(self) -> list:
        """Every image of the dataset: training images first, then the test split."""
        return (self.dataset.train + self.dataset.test) if self.dataset else []

    def add_unreadable(self, failures: dict[Path, str]) -> None:
        new = {Path(p): r for p, r in failures.items() if self.unreadable.get(Path(p)) != r}
        if new:
            self.unreadable.update(new)
            self.unreadableChanged.emit()

    # --- model --------------------------------------------------------------------------------
    def registry(self):
        from inspector.engine.registry import ModelRegistry

        if self._registry is None or not self._registry.root.is_dir():
            self._registry = ModelRegistry()
        return self._registry

    @property
    def exported(self):
        """The loaded model when it is an export (``engine.exported.ExportedModel``), else None.
        An export carries the ref of the version it came from, so the pages ask here, not by ref."""
        from inspector.engine.exported import ExportedModel

        model = self.predictor.bundle if self.predictor is not None else None
        return model if isinstance(model, ExportedModel) else None

    @property
    def model_label(self) -> str:
        """The loaded model in a few words: its ref, and for an export also that it is one."""
        if self.predictor is None:
            return ""
        exported = self.exported
        if exported is None:
            return self.predictor.info.ref
        return f"{self.predictor.info.ref} (exported, {exported.format} {exported.precision} on {self.predictor.runtime})"

    def _refuse_exported(self, what: str) -> None:
        """Raise ReadOnlyModel for an export: its parity holds only with the metadata it was measured with."""
        exported = self.exported
        if exported is not None:
            source = exported.export.get("source") or "the trained model"
            raise ReadOnlyModel(f"{exported.path} is an exported model and read-only (its parity was measured with its "
                                f"{what}): save the {what} to {source} and export it again")

    def set_predictor(self, predictor, keep_scores: bool = False) -> None:
        self.predictor = predictor
        if not keep_scores:
            self.scores.clear()
            self.region_areas.clear()
        log.info("model: %s", self.model_label or None)
        self.modelChanged.emit()
        self.thresholdChanged.emit(self.threshold)
        if not keep_scores:
            self.scoresChanged.emit()

    def load_model(self, ref: str | Path, device: str = "auto") -> Job:
        """Load a registry name/name@vN or a model file in the background."""
        def work(report, cancel):
            from inspector.engine.device import limit_threads
            from inspector.engine.predictor import Predictor

            limit_threads()
            return Predictor.open(ref, device=device, registry=self.registry())

        job = run_job(f"Loading model {ref}", work, parent=self)
        job.succeeded.connect(self.set_predictor)
        job.failed.connect(lambda message: self.error.emit(f"Could not load model {ref}: {message}"))
        return job

    # --- the threshold ------------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        return float(self.predictor.threshold) if self.predictor is not None else math.nan

    @property
    def stored_threshold(self) -> float:
        return float(self.predictor.info.threshold.value) if self.predictor is not None else math.nan

    @property
    def threshold_modified(self) -> bool:
        return self.predictor is not None and not math.isclose(self.threshold, self.stored_threshold, rel_tol=1e-12, abs_tol=0)

    def set_threshold(self, value: float) -> None:
        if self.predictor is None or not math.isfinite(value) or value == self.predictor.threshold:
            return
        self.predictor.threshold = float(value)
        self.thresholdChanged.emit(float(value))

    def reset_threshold(self) -> None:
        self.set_threshold(self.stored_threshold)

    @property
    def rules(self):
        """The loaded model's region rules (engine.regions.RegionRules), or None."""
        return self.predictor.info.rules if self.predictor is not None else None

    def decision(self, score: float | None, path: Path | None = None) -> str:
        """"OK", "NG", or "" when there is no score or no model. With region rules, the regions of
        ``path`` decide too once they are known (until then: the score, as without rules)."""
        if score is None or self.predictor is None or not math.isfinite(score):
            return ""
        known = self.region_areas.get(Path(path)) if path is not None and self.rules is not None else None
        if known is None:
            return decide(score, self.predictor.threshold)
        return decide_with_rules(score, self.predictor.threshold, known[0], self.rules, known[1])[0]

    def save_threshold(self, stats: dict | None = None, name: str | None = None):
        """Write the current threshold into a NEW registry version (parent = the loaded version;
        the registry's ``add_threshold_version``), then use that version. Returns its entry.
        ReadOnlyModel for an exported model."""
        from inspector.engine.bundle import ModelBundle
        from inspector.engine.predictor import Predictor

        if self.predictor is None:
            raise ValueError("load a model first")
        self._refuse_exported("threshold")
        bundle = ModelBundle(self.predictor.model, self.predictor.info)
        entry = self.registry().add_threshold_version(
            bundle, self.threshold, stats, dataset=self.dataset.name if self.dataset else None, name=name,
        )
        self.set_predictor(Predictor(ModelBundle(self.predictor.model, entry.info), self.predictor.device), keep_scores=True)
        self.registryChanged.emit()
        self.info.emit(f"Saved threshold {entry.info.threshold.value:.6g} as {entry.info.ref}")
        return entry

    def save_rules(self, rules, name: str | None = None):
        """Write region rules (``RegionRules``, or None for none) into a NEW registry version
        (the registry's ``add_rules_version``), then use that version. Returns its entry.
        ReadOnlyModel for an exported model."""
        from inspector.engine.bundle import ModelBundle
        from inspector.engine.predictor import Predictor

        if self.predictor is None:
            raise ValueError("load a model first")
        self._refuse_exported("region rules")
        bundle = ModelBundle(self.predictor.model, self.predictor.info)
        entry = self.registry().add_rules_version(bundle, rules, name=name)
        threshold = self.predictor.threshold  # a threshold being tried stays
        self.region_areas.clear()  # found at the old level: the pages score again to see them
        predictor = Predictor(ModelBundle(self.predictor.model, entry.info), self.predictor.device)
        predictor.threshold = threshold
        self.set_predictor(predictor, keep_scores=True)
        self.scoresChanged.emit()
        self.registryChanged.emit()
        self.info.emit(f"Saved region rules as {entry.info.ref}: {rules.describe() if rules is not None else 'none'}")
        return entry

    # --- scores -------------------------------------------------------------------------------
    def add_scores(self, scores: dict[Path, float], regions: dict[Path, tuple[tuple[float, ...], bool]] | None = None) -> None:
        """Scores of the loaded model; ``regions``: with rules, the files' region areas and
        whether their maps were finite (``Prediction.region_entry``)."""
        if scores or regions:
            self.scores.update({Path(p): float(s) for p, s in scores.items()})
            self.region_areas.update({Path(p): r for p, r in (regions or {}).items()})
            self.scoresChanged.emit()

