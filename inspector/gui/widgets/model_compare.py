"""Two models side by side on the same data: each scores the folder at its own stored threshold;
a metrics table, the per-image scores and decisions of both, and a scatter plot of the scores."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from inspector.engine.decision import decide
from inspector.gui.formatting import percent, ratio
from inspector.gui.widgets.decision import decision_color
from inspector.gui.widgets.plots import ScoreScatter


def compare_models(ref_a: str, ref_b: str, dataset, registry, report, cancel):
    """Both models' score sets on ``dataset`` (a background job: loading a model loads torch)."""
    from inspector.engine.analysis import score_dataset
    from inspector.engine.predictor import Predictor

    results = []
    for ref in (ref_a, ref_b):
        predictor = Predictor.open(ref, registry=registry)
        results.append(score_dataset(predictor, dataset, report=report, cancel=cancel))
    return results


class CompareView(QWidget):
    """Two score sets on the same data: a metrics table, per-image scores, and a scatter plot."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Select two models or versions (Ctrl+click) and press Compare to score both on the open folder.")
        self.title.setWordWrap(True)
        self.metrics = QTableWidget(0, 3)
        self.metrics.setHorizontalHeaderLabels(["", "A", "B"])
        self.metrics.verticalHeader().hide()
        self.metrics.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.metrics.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.scores = QTableWidget(0, 6)
        self.scores.setHorizontalHeaderLabels(["Image", "Label", "A score", "A", "B score", "B"])
        self.scores.verticalHeader().hide()
        self.scores.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.scores.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.scores.setSortingEnabled(True)
        self.scatter = ScoreScatter()
        tables = QSplitter(Qt.Orientation.Horizontal)
        tables.addWidget(self.metrics)
        tables.addWidget(self.scores)
        tables.setStretchFactor(1, 1)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(tables)
        body.addWidget(self.scatter)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(body, 1)

    def show_results(self, a, b) -> None:
        ma, mb = a.at(a.threshold), b.at(b.threshold)
        synthetic = " (with synthetic defects: the folder has good images only)" if a.synthetic else ""
        self.title.setText(f"<b>A = {a.model}</b> vs <b>B = {b.model}</b> on {a.dataset}: {a.n_good} good, {a.n_defect} defect "
                           f"images{synthetic}. Each at its own stored threshold.")
        self.metrics.setHorizontalHeaderLabels(["", f"A: {a.model}", f"B: {b.model}"])
        rows = [
            ("Threshold", f"{a.threshold:.5g}", f"{b.threshold:.5g}"),
            ("AUROC", ratio(ma.image_auroc), ratio(mb.image_auroc)),
            ("Average precision", ratio(ma.average_precision), ratio(mb.average_precision)),
            ("Best F1", ratio(ma.best_f1), ratio(mb.best_f1)),
            ("F1 at threshold", ratio(ma.f1), ratio(mb.f1)),
            ("Precision", ratio(ma.precision), ratio(mb.precision)),
            ("Recall", percent(ma.recall), percent(mb.recall)),
            ("False-alarm rate", percent(ma.false_alarm_rate), percent(mb.false_alarm_rate)),
            ("False alarms at 90 % recall", percent(ma.false_alarm_at_90_recall), percent(mb.false_alarm_at_90_recall)),
            ("Pixel AUROC", ratio(a.pixel_auroc), ratio(b.pixel_auroc)),
            ("ms per image", f"{a.ms_per_image:.1f}", f"{b.ms_per_image:.1f}"),
        ]
        self.metrics.setRowCount(len(rows))
        for r, values in enumerate(rows):
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                if c == 0:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.metrics.setItem(r, c, item)
        self.scores.setSortingEnabled(False)
        n = min(len(a.scores), len(b.scores))
        self.scores.setRowCount(n)
        for r in range(n):
            label = "defect" if a.labels[r] else "good"
            da, db = decide(a.scores[r], a.threshold), decide(b.scores[r], b.threshold)
            cells = [a.names[r], label, number_item(a.scores[r]), da, number_item(b.scores[r]), db]
            for c, value in enumerate(cells):
                item = value if isinstance(value, QTableWidgetItem) else QTableWidgetItem(value)
                if c in (3, 5):
                    item.setForeground(decision_color(value))
                self.scores.setItem(r, c, item)
        self.scores.setSortingEnabled(True)
        self.scatter.set_data(a.scores[:n], b.scores[:n], a.labels[:n], a.threshold, b.threshold, ("A", "B"))


def number_item(value: float) -> QTableWidgetItem:
    item = QTableWidgetItem()
    item.setData(Qt.ItemDataRole.DisplayRole, float(f"{value:.5g}"))
    return item
