"""How the run is going: the counters (inspected, NG, NG rate, FPS, latency, dropped, not stored,
not judged, the model in use) and a scrolling trend of the recent scores against the threshold."""

from __future__ import annotations

import collections

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QWidget

from inspector.gui.pages.live.inbox import TREND_POINTS
from inspector.gui.widgets.decision import NG_COLOR
from inspector.gui.widgets.plots import ThemedPlot

COUNTERS = (("inspected", "Inspected"), ("ng", "NG"), ("rate", "NG rate"), ("fps", "FPS"),
            ("latency", "Latency p50 / p95"), ("dropped", "Frames dropped"), ("unsaved", "NOT stored"),
            ("unjudged", "Not judged"), ("model", "Model in use"))
ALARM_STYLE = f"QLabel {{ color: {NG_COLOR.name()}; font-weight: bold; }}"


class Counters(QGroupBox):
    """The run's ``LiveStats`` as a form; results lost or frames not judged are shown in red."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Counters", parent)
        self.labels = {key: QLabel("–") for key, _ in COUNTERS}
        form = QFormLayout(self)
        for key, title in COUNTERS:
            self.labels[key].setAccessibleName(title)
            form.addRow(title, self.labels[key])

    def show_stats(self, s) -> None:
        c = self.labels
        c["inspected"].setText(f"{s.inspected}")
        c["ng"].setText(f"{s.ng}")
        c["rate"].setText(f"{100 * s.ng_rate:.2f} %" if s.inspected else "–")
        c["fps"].setText(f"{s.fps:.1f}")
        c["latency"].setText(f"{s.latency_p50_ms:.0f} / {s.latency_p95_ms:.0f} ms" if s.inspected else "–")
        c["dropped"].setText(f"{s.dropped}")
        c["unsaved"].setText(f"{s.unsaved}")
        c["unsaved"].setStyleSheet(ALARM_STYLE if s.unsaved else "")
        c["unjudged"].setText(f"{s.unjudged}")
        c["unjudged"].setStyleSheet(ALARM_STYLE if s.unjudged else "")
        c["model"].setText(s.model)


class ScoreTrend(ThemedPlot):
    """The last ``TREND_POINTS`` scores, NG ones marked, and the threshold as a dashed line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        import pyqtgraph as pg

        super().__init__("Recent scores", "", "score", parent)
        self.setMinimumHeight(150)
        self._points: collections.deque = collections.deque(maxlen=TREND_POINTS)
        self.curve = self.plot_item.plot([], [], pen=self.palette().highlight().color())
        self.ng_marks = self.plot_item.plot([], [], pen=None, symbol="o", symbolSize=6, symbolBrush=NG_COLOR, symbolPen=None)
        self.threshold = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(NG_COLOR, style=Qt.PenStyle.DashLine))
        self.plot_item.addItem(self.threshold)
        self.threshold.hide()

    def new_run(self, threshold: float) -> None:
        self._points.clear()
        self.set_threshold(threshold)
        self.threshold.show()

    def set_threshold(self, value: float) -> None:
        self.threshold.setValue(value)

    def add(self, points: list) -> None:
        """(seq, score, is NG) of new results."""
        if not points:
            return
        self._points.extend(points)
        data = np.array(self._points, dtype=np.float64)
        self.curve.setData(data[:, 0], data[:, 1])
        ng = data[data[:, 2] > 0]
        self.ng_marks.setData(ng[:, 0], ng[:, 1])
