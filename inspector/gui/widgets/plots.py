"""pyqtgraph plots in the window's colours: loss curves, score histogram with a draggable
threshold line, ROC curve, and a score-vs-score scatter for comparing two models."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QPalette

from inspector.gui.widgets.decision import NG_COLOR, OK_COLOR

pg.setConfigOptions(antialias=True)

# distinct series colours that read on light and dark backgrounds
SERIES = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


class ThemedPlot(pg.PlotWidget):
    """A PlotWidget that takes its background, axes and text colours from the Qt palette."""

    def __init__(self, title: str = "", x_label: str = "", y_label: str = "", parent=None) -> None:
        super().__init__(parent)
        self._title, self._x, self._y = title, x_label, y_label
        self.plot_item = self.getPlotItem()
        self.plot_item.showGrid(x=True, y=True, alpha=0.15)
        self.setMinimumHeight(160)
        self.apply_palette()

    def apply_palette(self) -> None:
        pal = self.palette()
        background = pal.color(QPalette.ColorRole.Base)
        text = pal.color(QPalette.ColorRole.Text)
        self.setBackground(background)
        for name in ("left", "bottom"):
            axis = self.plot_item.getAxis(name)
            axis.enableAutoSIPrefix(False)  # scores and shares read as they are, no "(x0.001)"
            axis.setPen(pg.mkPen(pal.color(QPalette.ColorRole.Mid)))
            axis.setTextPen(pg.mkPen(text))
        if self._title:
            self.plot_item.setTitle(self._title, color=text.name(), size="10pt")
        if self._x:
            self.plot_item.setLabel("bottom", self._x, color=text.name())
        if self._y:
            self.plot_item.setLabel("left", self._y, color=text.name())
        legend = self.plot_item.legend
        if legend is not None:
            legend.setLabelTextColor(text)
            legend.setBrush(pg.mkBrush(QColor(background.red(), background.green(), background.blue(), 200)))

    def text_color(self) -> QColor:
        return self.palette().color(QPalette.ColorRole.Text)

    def changeEvent(self, event) -> None:
        if hasattr(self, "plot_item") and event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange, QEvent.Type.StyleChange):
            self.apply_palette()
        super().changeEvent(event)


class LossPlot(ThemedPlot):
    """Training losses per step, one curve per loss (lightly smoothed), redrawn on demand."""

    def __init__(self, parent=None) -> None:
        super().__init__("Training losses", "step", "loss", parent)
        self.plot_item.addLegend(offset=(-10, 10))
        self.apply_palette()
        self.steps: list[int] = []
        self.values: dict[str, list[float]] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}

    def clear_losses(self) -> None:
        self.steps.clear()
        self.values.clear()
        for curve in self.curves.values():
            self.plot_item.removeItem(curve)
        self.curves.clear()
        if self.plot_item.legend is not None:
            self.plot_item.legend.clear()

    def add(self, step: int, losses: dict[str, float]) -> None:
        self.steps.append(step)
        for key, value in losses.items():
            series = self.values.setdefault(key, [math.nan] * (len(self.steps) - 1))
            series.append(float(value))
        for series in self.values.values():  # a loss missing this step
            if len(series) < len(self.steps):
                series.append(math.nan)

    def redraw(self) -> None:
        x = np.asarray(self.steps, dtype=float)
        for i, (key, series) in enumerate(self.values.items()):
            y = _ema(np.asarray(series, dtype=float))
            curve = self.curves.get(key)
            if curve is None:
                curve = self.plot_item.plot(pen=pg.mkPen(SERIES[i % len(SERIES)], width=2), name=key)
                self.curves[key] = curve
            curve.setData(x, y, connect="finite")


def _ema(y: np.ndarray, alpha: float = 0.2) -> np.ndarray:
    out = np.empty_like(y)
    level = math.nan
    for i, v in enumerate(y):
        level = v if math.isnan(level) else (level if math.isnan(v) else level + alpha * (v - level))
        out[i] = level
    return out


class ScoreHistogram(ThemedPlot):
    """Good vs defect score distributions and the threshold as a line you can drag."""

    thresholdDragged = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__("Score histogram", "anomaly score", "share of images", parent)
        self.plot_item.addLegend(offset=(-10, 10))
        self.apply_palette()
        self.good = self.plot_item.plot(
            stepMode="center", fillLevel=0, pen=pg.mkPen(OK_COLOR, width=2), brush=_brush(OK_COLOR, 70), name="good"
        )
        self.defect = self.plot_item.plot(
            stepMode="center", fillLevel=0, pen=pg.mkPen(NG_COLOR, width=2), brush=_brush(NG_COLOR, 70), name="defect"
        )
        self.line = pg.InfiniteLine(
            angle=90,
            movable=True,
            pen=pg.mkPen(self.text_color(), width=2, style=Qt.PenStyle.DashLine),
            hoverPen=pg.mkPen(self.palette().color(QPalette.ColorRole.Highlight), width=3),
            label="threshold {value:.4g}",
            labelOpts={"position": 0.92, "color": self.text_color(), "movable": True},
        )
        self.line.setZValue(10)
        self.line.setToolTip("Drag to try another threshold")
        self.plot_item.addItem(self.line)
        self.line.sigPositionChanged.connect(self._on_line_moved)
        self._setting = False

    def apply_palette(self) -> None:
        super().apply_palette()
        if hasattr(self, "line"):  # the line and its label follow a theme change too
            self.line.setPen(pg.mkPen(self.text_color(), width=2, style=Qt.PenStyle.DashLine))
            self.line.label.setColor(self.text_color())

    def set_scores(self, good: np.ndarray, defect: np.ndarray, defect_name: str = "defect") -> None:
        every = np.r_[good, defect]
        if every.size == 0:
            self.good.setData([], [])
            self.defect.setData([], [])
            return
        low, high = np.quantile(every, [0.0, 0.995])
        if high <= low:
            high = low + 1e-6
        edges = np.linspace(low, high + (high - low) * 0.02, 41)
        for item, values in ((self.good, good), (self.defect, defect)):
            counts, _ = np.histogram(np.clip(values, low, edges[-1]), bins=edges)
            item.setData(edges, counts / max(len(values), 1))
            item.setVisible(len(values) > 0)
        legend = self.plot_item.legend
        if legend is not None and len(legend.items) > 1:
            legend.items[1][1].setText(defect_name)
        span = high - low
        self.plot_item.setXRange(low - 0.02 * span, edges[-1] + 0.02 * span, padding=0)
        self.plot_item.enableAutoRange(axis="y")

    def set_threshold(self, value: float) -> None:
        if not math.isfinite(value):
            return
        self._setting = True
        try:
            self.line.setValue(value)
        finally:
            self._setting = False

    def _on_line_moved(self) -> None:
        if not self._setting:
            self.thresholdDragged.emit(float(self.line.value()))


class RocPlot(ThemedPlot):
    def __init__(self, parent=None) -> None:
        super().__init__("ROC curve", "false-alarm rate (good flagged NG)", "detection rate (defects flagged NG)", parent)
        self.plot_item.addLegend(offset=(-10, -10))
        self.apply_palette()
        self.plot_item.plot([0, 1], [0, 1], pen=pg.mkPen(self.palette().color(QPalette.ColorRole.Mid), style=Qt.PenStyle.DotLine))
        self.curve = self.plot_item.plot(pen=pg.mkPen(SERIES[0], width=2), name="ROC")
        self.point = pg.ScatterPlotItem(size=11, brush=pg.mkBrush(SERIES[1]), pen=pg.mkPen("w"), name="at threshold")
        self.plot_item.addItem(self.point)
        self.plot_item.setXRange(0, 1, padding=0.02)
        self.plot_item.setYRange(0, 1, padding=0.02)
        self.plot_item.setMouseEnabled(False, False)

    def set_curve(self, fpr: np.ndarray, tpr: np.ndarray, auroc: float) -> None:
        self.curve.setData(fpr, tpr)
        legend = self.plot_item.legend
        if legend is not None and legend.items:
            legend.items[0][1].setText(f"ROC (AUROC {auroc:.3f})" if math.isfinite(auroc) else "ROC")

    def set_point(self, false_alarm_rate: float, recall: float) -> None:
        if math.isfinite(false_alarm_rate) and math.isfinite(recall):
            self.point.setData([false_alarm_rate], [recall])
        else:
            self.point.setData([], [])


class ScoreScatter(ThemedPlot):
    """Scores of model A (x) against model B (y) on the same images, with both thresholds."""

    def __init__(self, parent=None) -> None:
        super().__init__("Scores of both models on the same images", "model A score", "model B score", parent)
        self.plot_item.addLegend(offset=(10, 10))
        self.apply_palette()
        self.good = pg.ScatterPlotItem(size=6, brush=_brush(OK_COLOR, 160), pen=None, name="good")
        self.defect = pg.ScatterPlotItem(size=6, brush=_brush(NG_COLOR, 160), pen=None, name="defect")
        self.plot_item.addItem(self.good)
        self.plot_item.addItem(self.defect)
        pen = pg.mkPen(self.text_color(), style=Qt.PenStyle.DashLine)
        self.line_a = pg.InfiniteLine(angle=90, pen=pen)
        self.line_b = pg.InfiniteLine(angle=0, pen=pen)
        self.plot_item.addItem(self.line_a)
        self.plot_item.addItem(self.line_b)

    def set_data(self, a: np.ndarray, b: np.ndarray, labels: np.ndarray, threshold_a: float, threshold_b: float, names=("A", "B")) -> None:
        self.good.setData(a[labels == 0], b[labels == 0])
        self.defect.setData(a[labels == 1], b[labels == 1])
        self.line_a.setValue(threshold_a)
        self.line_b.setValue(threshold_b)
        self.plot_item.setLabel("bottom", f"{names[0]} score", color=self.text_color().name())
        self.plot_item.setLabel("left", f"{names[1]} score", color=self.text_color().name())


def _brush(color: QColor, alpha: int):
    c = QColor(color)
    c.setAlpha(alpha)
    return pg.mkBrush(c)
