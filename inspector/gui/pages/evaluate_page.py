"""Evaluate: score the test split; confusion matrix at the current threshold, ROC with AUROC,
good vs defect histogram with a draggable threshold line (the session's one threshold: the
confusion matrix, precision/recall/F1 and the OK/NG marks everywhere follow it live), and
"save threshold to model" (a new registry version), and the model's region rules ("save rules
to model", a new version too). With good images only, synthetic
defects stand in: the page shows the false-alarm rate on held-out good images and the share
of synthetic defects caught instead of a confusion matrix of real defects.

A model with region rules is judged here as everywhere else (``engine.decision.decide_with_rules``
on each image's regions, found in the evaluation's worker): the confusion matrix and the rates at
the threshold follow the rules; AUROC, the ROC and best F1 rank by the score alone."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from inspector.data.datasets import Dataset
from inspector.engine import metrics
from inspector.engine.analysis import ScoreSet, score_dataset
from inspector.engine.decision import NG, decide_with_rules
from inspector.engine.events import CancelToken, Progress
from inspector.gui.formatting import percent, ratio
from inspector.gui.session import ReadOnlyModel
from inspector.gui.widgets.confusion import ConfusionMatrix
from inspector.gui.widgets.job_progress import JobProgress
from inspector.gui.widgets.plots import RocPlot, ScoreHistogram
from inspector.gui.widgets.region_rules import RegionRulesForm
from inspector.gui.workers import Job, run_job

if TYPE_CHECKING:
    from inspector.engine.predictor import Predictor, RegionEntry
    from inspector.engine.regions import RegionRules


@dataclasses.dataclass
class RuleInputs:
    """What the region rules need of an evaluation, found in its worker: each score-set row's
    region entry (its order), each scored file's (for the session), and the level and pixel size
    they were found at (other rules at the same ones judge by the same regions)."""

    rows: list[RegionEntry]
    by_path: dict[Path, RegionEntry]
    key: tuple[float, float | None]


def region_key(rules: RegionRules | None) -> tuple[float, float | None] | None:
    """What the regions depend on: the rules' level and pixel size (None: no rules)."""
    return None if rules is None else (rules.level, rules.pixel_size_mm)


def evaluate_with_regions(predictor: Predictor, dataset: Dataset, report: Callable[[Progress], None] | None = None,
                          cancel: CancelToken | None = None) -> tuple[ScoreSet, RuleInputs | None]:
    """``score_dataset``, and with region rules each image's regions (None without rules)."""
    result = score_dataset(predictor, dataset, report, cancel)
    if result.region_entries is None:
        return result, None
    return result, RuleInputs(result.region_entries, result.regions_by_path, region_key(predictor.info.rules))


class EvaluatePage(QWidget):
    evaluated = Signal(object)  # ScoreSet
    thresholdSaved = Signal(object)  # the new registry Entry
    rulesSaved = Signal(object)  # the new registry Entry

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.scoreset: ScoreSet | None = None
        self.job: Job | None = None
        self._model = None  # the weights the score set belongs to
        self.rule_inputs: RuleInputs | None = None  # the score set's regions (a model with rules)
        self._again = False  # evaluate again once the cancelled run has stopped (the rules changed)
        self._job_key: tuple[float, float | None] | None = None  # where the running job finds regions

        self.run_button = QPushButton("Evaluate on the test split")
        self.run_button.setToolTip("Ctrl+E")
        self.run_button.clicked.connect(self.evaluate)
        self.job_progress = JobProgress()
        self.header = QLabel()
        self.header.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.run_button)
        top.addWidget(self.job_progress, 1)
        top.addWidget(self.header, 3)

        # --- at the threshold -------------------------------------------------------------
        self.threshold = QDoubleSpinBox(decimals=6, minimum=-1e12, maximum=1e12)
        self.threshold.setToolTip("Type a threshold, or drag the line on the histogram")
        self.threshold.setKeyboardTracking(False)
        self.threshold.valueChanged.connect(self._on_spin)
        self.stored = QLabel()
        self.stored.setWordWrap(True)
        self.precision = QLabel()
        self.recall = QLabel()
        self.f1 = QLabel()
        self.false_alarms = QLabel()
        self.rules_note = QLabel()
        self.rules_note.setObjectName("hint")
        self.rules_note.setWordWrap(True)
        self.rules_note.hide()  # shown while the rules decide
        at = QFormLayout()
        at.addRow("Threshold", self.threshold)
        at.addRow("", self.stored)
        at.addRow("Precision", self.precision)
        at.addRow("Recall (defects caught)", self.recall)
        at.addRow("F1", self.f1)
        at.addRow("False-alarm rate", self.false_alarms)
        self.at_box = QGroupBox("At the current threshold")
        self.at_box.setLayout(at)

        self.confusion = ConfusionMatrix()
        self.good_only = QLabel()
        self.good_only.setWordWrap(True)
        self.good_only.setTextFormat(Qt.TextFormat.RichText)
        self.good_only.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.matrix_stack = QStackedWidget()
        self.matrix_stack.addWidget(self.confusion)
        self.matrix_stack.addWidget(self.good_only)
        self.matrix_box = QGroupBox("Confusion matrix")
        QVBoxLayout(self.matrix_box).addWidget(self.matrix_stack)

        self.auroc = QLabel()
        self.ap = QLabel()
        self.best_f1 = QLabel()
        self.best_f1.setWordWrap(True)
        self.far90 = QLabel()
        self.pixel = QLabel()
        overall = QFormLayout()
        overall.addRow("AUROC", self.auroc)
        overall.addRow("Average precision", self.ap)
        overall.addRow("Best F1", self.best_f1)
        overall.addRow("False alarms at 90 % recall", self.far90)
        overall.addRow("Pixel AUROC", self.pixel)
        self.overall_box = QGroupBox("Whatever the threshold")
        self.overall_box.setLayout(overall)

        self.best_button = QPushButton("Use the best-F1 threshold")
        self.best_button.clicked.connect(self.use_best_f1)
        self.reset_button = QPushButton("Reset to the model's threshold")
        self.reset_button.clicked.connect(session.reset_threshold)
        self.save_button = QPushButton("Save threshold to model")
        self.save_button.setToolTip("Write this threshold into a new version of the model (Ctrl+S)")
        self.save_button.clicked.connect(self.save_threshold)

        self.rules_form = RegionRulesForm()
        self.rules_form.saveRequested.connect(self.save_rules)

        panel = QWidget()
        ll = QVBoxLayout(panel)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.at_box)
        ll.addWidget(self.rules_note)
        ll.addWidget(self.matrix_box, 1)
        ll.addWidget(self.overall_box)
        ll.addWidget(self.rules_form)
        scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left = QWidget()  # the figures scroll; the threshold buttons stay in view
        left.setMinimumWidth(360)
        left.setMaximumWidth(480)
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(scroll, 1)
        for b in (self.best_button, self.reset_button, self.save_button):
            lv.addWidget(b)

        self.histogram = ScoreHistogram()
        self.histogram.thresholdDragged.connect(session.set_threshold)
        self.roc = RocPlot()
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(self.histogram)
        plots.addWidget(self.roc)
        plots.setStretchFactor(0, 3)
        plots.setStretchFactor(1, 2)

        body = QSplitter(Qt.Orientation.Horizontal)
        body.setObjectName("evaluateSplitter")
        body.addWidget(left)
        body.addWidget(plots)
        body.setStretchFactor(1, 1)
        body.setSizes([400, 800])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(body, 1)

        session.datasetChanged.connect(self._invalidate)
        session.modelChanged.connect(self._on_model)
        session.thresholdChanged.connect(self._on_threshold)
        self._invalidate()

    # --- running ------------------------------------------------------------------------------
    def evaluate(self) -> Job | None:
        if self.job is not None and self.job.running:
            return self.job
        predictor, dataset = self.session.predictor, self.session.dataset
        if predictor is None or dataset is None:
            self.session.error.emit("Open a folder (Data page) and load or train a model to evaluate it.")
            return None
        self.run_button.setEnabled(False)
        self.header.setText(f"Scoring the {len(dataset.test)} test images of {dataset.name} with {self.session.model_label}…")
        self.job = run_job(f"Evaluating {predictor.info.ref}", evaluate_with_regions, predictor, dataset, parent=self)
        self.job_progress.watch(self.job, len(dataset.test))
        self.job.succeeded.connect(self._on_done)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(lambda: self.header.setText("Evaluation cancelled."))
        self.job.finished.connect(self._on_finished)
        self._model = predictor.model
        self._job_key = region_key(predictor.info.rules)
        return self.job

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _on_failed(self, message: str) -> None:
        self.header.setText(f"Evaluation failed: {message}")
        self.session.error.emit(f"Evaluation failed: {message}")

    def _on_finished(self) -> None:
        if self._again:
            self._again = False
            self.evaluate()
        self._update_buttons()

    def _on_done(self, outcome: tuple[ScoreSet, RuleInputs | None]) -> None:
        result, inputs = outcome
        if self.session.predictor is None or self.session.predictor.model is not self._model:
            return  # the model changed while this ran
        if self.session.rules is not None and (inputs is None or inputs.key != region_key(self.session.rules)):
            return  # the rules changed how regions are found while this ran (evaluated again: _on_model)
        self.scoreset, self.rule_inputs = result, inputs
        self.session.add_scores(result.scores_by_path, inputs.by_path if inputs is not None else None)
        if result.skipped:
            self.session.add_unreadable({p: r for p, r in result.skipped})
        kind = "synthetic defects painted on its held-out good images" if result.synthetic else "defects"
        self.header.setText(
            f"<b>{result.model}</b> on <b>{result.dataset}</b>: {result.n_good} good and {result.n_defect} {kind}"
            f" · {result.ms_per_image:.1f} ms per image"
        )
        name = "synthetic defect" if result.synthetic else "defect"
        self.histogram.set_scores(result.good_scores(), result.defect_scores(), name)
        fpr, tpr, _ = result.roc()
        whole = result.at(self.session.threshold)
        self.roc.set_curve(fpr, tpr, whole.image_auroc)
        self.roc.plot_item.setTitle(
            "ROC curve (synthetic defects)" if result.synthetic else "ROC curve", color=self.roc.text_color().name(), size="10pt"
        )
        self.auroc.setText(ratio(whole.image_auroc))
        self.ap.setText(ratio(whole.average_precision))
        self.best_f1.setText(f"{ratio(whole.best_f1)} at threshold {whole.best_f1_threshold:.5g}")
        self.far90.setText(percent(whole.false_alarm_at_90_recall))
        self.pixel.setText(ratio(result.pixel_auroc) if result.pixel_auroc is not None else "– (no masks)")
        self.matrix_stack.setCurrentWidget(self.good_only if result.synthetic else self.confusion)
        self.matrix_box.setTitle("Good images only: synthetic defects" if result.synthetic else "Confusion matrix")
        self._on_threshold(self.session.threshold)
        self.evaluated.emit(result)

    # --- the threshold ------------------------------------------------------------------------
    def _on_spin(self, value: float) -> None:
        self.session.set_threshold(value)

    def _on_threshold(self, value: float) -> None:
        self.threshold.blockSignals(True)
        self.threshold.setValue(value if math.isfinite(value) else 0.0)
        self.threshold.blockSignals(False)
        self.histogram.set_threshold(value)
        if self.session.predictor is not None:
            stored = self.session.stored_threshold
            self.stored.setText(
                f"model's: {stored:.6g} ({self.session.predictor.info.threshold.method})"
                + (" · exported: read-only" if self.session.exported is not None else "")
                + (" · <b>changed, not saved</b>" if self.session.threshold_modified else "")
            )
        self._update_buttons()
        result = self.scoreset
        if result is None or not math.isfinite(value):
            return
        m = self.metrics_at(value)
        by_rules = self._by_rules()
        self.at_box.setTitle("At the current threshold" + (", with the region rules" if by_rules else ""))
        self.overall_box.setTitle("Whatever the threshold" + (" (synthetic defects)" if result.synthetic else "")
                                  + (", by score alone" if by_rules else ""))
        self.rules_note.setText(
            f"The model's region rules decided these ({self.session.rules.describe()}), as everywhere in the app. "
            "AUROC, the ROC curve and best F1 rank by the score alone." if by_rules else "")
        self.rules_note.setVisible(by_rules)
        self.precision.setText(ratio(m.precision))
        self.recall.setText(percent(m.recall))
        self.f1.setText(ratio(m.f1))
        self.false_alarms.setText(percent(m.false_alarm_rate))
        self.roc.set_point(m.false_alarm_rate, m.recall)
        c = m.confusion
        if result.synthetic:
            self.good_only.setText(
                f"<p style='font-size:13pt'><b>{percent(m.false_alarm_rate)}</b> false alarms on held-out good images"
                f" ({c['fp']} of {m.n_good} flagged NG)</p>"
                f"<p style='font-size:13pt'><b>{percent(m.recall)}</b> of synthetic defects caught"
                f" ({c['tp']} of {m.n_defect})</p>"
                "<p>This folder has no real defect images, so defects were painted onto its held-out good "
                "images (scratches, blobs, texture patches, cut-and-paste). Real defects may be harder or "
                "easier to catch: add a test/&lt;defect&gt; folder for a real confusion matrix.</p>"
            )
        else:
            self.confusion.set_counts(c)

    def _by_rules(self) -> bool:
        """Whether the model's region rules decide the figures at the threshold."""
        return (self.scoreset is not None and self.session.rules is not None and self.rule_inputs is not None
                and self.rule_inputs.key == region_key(self.session.rules))

    def metrics_at(self, threshold: float) -> metrics.DetectionMetrics:
        """The score set's figures at ``threshold``; with region rules, those at the threshold
        (confusion, precision, recall, F1, false alarms) come from the rules' decisions."""
        m = self.scoreset.at(threshold)
        if not self._by_rules():
            return m
        rules, labels = self.session.rules, self.scoreset.labels
        ng = np.array([decide_with_rules(score, threshold, areas, rules, finite)[0] == NG
                       for score, (areas, finite) in zip(self.scoreset.scores.tolist(), self.rule_inputs.rows)], dtype=bool)
        precision, recall, f1 = metrics.precision_recall_f1(labels, ng)
        good = labels == 0
        return dataclasses.replace(m, precision=precision, recall=recall, f1=f1, confusion=metrics.confusion(labels, ng),
                                   false_alarm_rate=float(ng[good].mean()) if good.any() else math.nan)

    def current_metrics(self):
        return self.metrics_at(self.session.threshold) if self.scoreset is not None else None

    def use_best_f1(self) -> None:
        m = self.current_metrics()
        if m is not None and math.isfinite(m.best_f1_threshold):
            self.session.set_threshold(m.best_f1_threshold)

    def save_threshold(self):
        if self.session.predictor is None:
            self.session.error.emit("Load a model first.")
            return None
        m = self.current_metrics()
        stats = {}
        if m is not None:
            stats = {
                "evaluated_on": self.scoreset.dataset,
                "synthetic_defects": self.scoreset.synthetic,
                "false_alarm_rate": m.false_alarm_rate,
                "recall": m.recall,
                "precision": m.precision,
                "f1": m.f1,
                "n_good": m.n_good,
                "n_defect": m.n_defect,
            }
            if self._by_rules():
                stats["decided_by_region_rules"] = self.session.rules.describe()
        return self._save_version("threshold", lambda: self.session.save_threshold(stats), self.thresholdSaved)

    def save_rules(self, rules):
        """The form's rules (or None) as a new version of the model, through the session."""
        if self.session.predictor is None:
            self.session.error.emit("Load a model first.")
            return None
        return self._save_version("region rules", lambda: self.session.save_rules(rules), self.rulesSaved)

    def _save_version(self, what: str, save, saved):
        """A new model version from ``save()``; a failure is one message, never a crash."""
        try:
            entry = save()
        except ReadOnlyModel as e:  # an exported model: a refusal, not a failure
            self.session.error.emit(f"Not saved: {e}")
            return None
        except Exception as e:  # the registry's reasons (disk full, a name taken) are shown
            import logging

            logging.getLogger(__name__).exception("saving the %s failed", what)
            self.session.error.emit(f"Could not save the {what}: {e}")
            return None
        saved.emit(entry)
        return entry

    # --- state --------------------------------------------------------------------------------
    def _on_model(self) -> None:
        self.rules_form.set_rules(self.session.rules)
        self.rules_form.setEnabled(self.session.predictor is not None)
        model = self.session.predictor.model if self.session.predictor is not None else None
        rules = self.session.rules
        running = self.job is not None and self.job.running
        found = self._job_key if running else (self.rule_inputs.key if self.rule_inputs is not None else None)
        if model is not self._model:
            self._invalidate()
        elif rules is not None and (running or self.scoreset is not None) and found != region_key(rules):
            # rules that find regions at another level or pixel size: the figures need them found again
            self._invalidate()
            if running:
                self._again = True  # once the cancelled run has stopped
            else:
                self.evaluate()
        self._on_threshold(self.session.threshold)

    def _invalidate(self) -> None:
        self.cancel()
        self.scoreset = None
        self.rule_inputs = None
        self._again = False
        self.rules_note.setText("")
        self.rules_note.hide()
        self.at_box.setTitle("At the current threshold")
        self._model = self.session.predictor.model if self.session.predictor is not None else None
        self.histogram.set_scores(_empty(), _empty())
        self.roc.set_curve(_empty(), _empty(), math.nan)
        self.roc.set_point(math.nan, math.nan)
        self.confusion.set_counts({})
        self.good_only.setText("")
        for label in (self.precision, self.recall, self.f1, self.false_alarms, self.auroc, self.ap, self.best_f1, self.far90, self.pixel):
            label.setText("–")
        if self.session.predictor is None or self.session.dataset is None:
            self.header.setText("Open a folder with a test split and load or train a model, then evaluate it here.")
        else:
            self.header.setText(
                f"Evaluate <b>{self.session.model_label}</b> on the {len(self.session.dataset.test)} test images "
                f"of <b>{self.session.dataset.name}</b> (Ctrl+E)."
            )
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.job is not None and self.job.running
        ready = self.session.predictor is not None and self.session.dataset is not None
        self.run_button.setEnabled(ready and not running)
        self.best_button.setEnabled(self.scoreset is not None)
        self.reset_button.setEnabled(self.session.threshold_modified)
        self.save_button.setEnabled(self.session.threshold_modified)


def _empty() -> np.ndarray:
    return np.zeros(0)
