"""The result on screen: the OK/NG banner with the score (and, with region rules, the rule that
decided) and the source's state, the storage alarm, the frame with the heat map over the
inspected region, its defect regions outlined (``ImageView.set_outlines``, as on the Results
page) and the region of interest (typed or drawn), and the review row: pause on NG and stepping
through the recent NG frames."""

from __future__ import annotations

import html
import time

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from inspector.gui.pages.live.inbox import KEEP_NG
from inspector.gui.widgets.decision import NG_COLOR, OK_COLOR, DecisionBadge, score_text
from inspector.gui.widgets.image_view import ImageView

STATE_TEXT = {
    "connecting": ("connecting…", None),
    "live": ("live", OK_COLOR),
    "lost": ("LOST", NG_COLOR),
    "ended": ("ended", None),
}


class FrameView(ImageView):
    """The live frame, fitted to the box, with the region of interest drawn on it. In draw mode a
    drag on the frame sets the ROI (``roiDrawn`` in frame pixels)."""

    roiDrawn = Signal(object)  # (x, y, w, h)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Choose a source and a model, then Start", parent)
        self.roi: tuple[int, int, int, int] | None = None
        self.draw_mode = False
        self._drag: tuple[QPointF, QPointF] | None = None
        self.setMouseTracking(False)

    def set_roi(self, roi) -> None:
        self.roi = tuple(roi) if roi else None
        self.update()

    def image_rect(self) -> QRectF | None:
        """Where the image is drawn in widget coordinates (as ImageView.paintEvent places it)."""
        if self._pixmap is None:
            return None
        rect = self.rect()
        pw, ph = self._pixmap.width(), self._pixmap.height()
        scale = min(rect.width() / pw, rect.height() / ph)
        w, h = pw * scale, ph * scale
        return QRectF(rect.x() + (rect.width() - w) / 2, rect.y() + (rect.height() - h) / 2, w, h)

    def to_image(self, point: QPointF) -> tuple[float, float] | None:
        target = self.image_rect()
        if target is None:
            return None
        scale = target.width() / self._pixmap.width()
        x = (point.x() - target.x()) / scale
        y = (point.y() - target.y()) / scale
        return min(max(x, 0.0), self._pixmap.width()), min(max(y, 0.0), self._pixmap.height())

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        target = self.image_rect()
        if target is None:
            return
        p = QPainter(self)
        scale = target.width() / self._pixmap.width()
        if self.roi is not None:
            x, y, w, h = self.roi
            pen = QPen(self.palette().highlight().color(), 2, Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawRect(QRectF(target.x() + x * scale, target.y() + y * scale, w * scale, h * scale))
        if self._drag is not None:
            p.setPen(QPen(QColor("#ffcc00"), 2))
            p.drawRect(QRectF(self._drag[0], self._drag[1]).normalized())

    def mousePressEvent(self, event) -> None:
        if self.draw_mode and self._pixmap is not None and event.button() == Qt.MouseButton.LeftButton:
            self._drag = (event.position(), event.position())
            self.update()
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._drag is not None:
            self._drag = (self._drag[0], event.position())
            self.update()

    def mouseReleaseEvent(self, event) -> None:
        if self._drag is None:
            return
        a, b = self.to_image(self._drag[0]), self.to_image(event.position())
        self._drag = None
        self.update()
        if a is None or b is None:
            return
        x0, x1 = sorted((a[0], b[0]))
        y0, y1 = sorted((a[1], b[1]))
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            self.roiDrawn.emit((round(x0), round(y0), round(x1 - x0), round(y1 - y0)))


def frame_outlines(result) -> list[tuple[int, int, int, int]]:
    """The prediction's defect regions as boxes on the whole frame: found on the inspected region
    (the ROI crop), so moved by the ROI's corner."""
    dx, dy = (result.roi[0], result.roi[1]) if result.roi else (0, 0)
    return [(x + dx, y + dy, w, h) for x, y, w, h in (r.bbox for r in result.prediction.regions)]


def regions_text(prediction) -> str:
    """How many regions and the largest, in the rules' unit (as the Results page says it)."""
    regions = prediction.regions
    unit = prediction.rules.unit if prediction.rules is not None else "px"
    return f"{len(regions)} · largest {regions[0].area:.4g} {unit}" if regions else "none"


def describe(result) -> str:
    """The line under the score: frame, time, model, latency, and whether it is stored."""
    when = time.strftime("%H:%M:%S", time.localtime(result.frame.timestamp))
    name = f" {result.frame.name}" if result.frame.name else ""
    return (f"frame {result.frame.frame_id}{name} · {when} · {result.model_ref} · {result.latency_ms:.0f} ms"
            f"{'' if result.record_id is not None else ' · NOT STORED'}")


class LiveView(QWidget):
    """Shows one LiveResult at a time and keeps the recent NG ones for review. The page decides
    what to show (``show_result``) and applies a ROI (``roiRequested``, ``roiTextEntered``)."""

    roiRequested = Signal(object)  # drawn (x, y, w, h), or None for the whole frame
    roiTextEntered = Signal(str)  # typed, not yet checked
    resultChosen = Signal(object)  # an NG result stepped to
    resumeRequested = Signal()
    backToLiveRequested = Signal()
    opacityChanged = Signal(float)

    def __init__(self, opacity: float = 0.5, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result = None  # the LiveResult drawn
        self.ng_history: list = []
        self.ng_index = -1
        self.reviewing = False
        # banner
        self.badge = DecisionBadge()
        self.badge.setMinimumWidth(140)
        font = self.badge.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        self.badge.setFont(font)
        self.score_label = QLabel("–")
        self.score_label.setTextFormat(Qt.TextFormat.RichText)
        self.detail_label = QLabel("")
        self.detail_label.setObjectName("hint")
        self.state_label = QLabel("stopped")
        self.state_label.setAccessibleName("source state")
        banner = QHBoxLayout()
        banner.addWidget(self.badge)
        texts = QVBoxLayout()
        texts.addWidget(self.score_label)
        texts.addWidget(self.detail_label)
        banner.addLayout(texts, 1)
        banner.addWidget(self.state_label)
        # storage alarm: results that were inspected but NOT stored (disk full, database locked...)
        self.store_alarm = QLabel("")
        self.store_alarm.setObjectName("storeAlarm")
        self.store_alarm.setAccessibleName("storage alarm")
        self.store_alarm.setWordWrap(True)
        self.store_alarm.setStyleSheet(f"QLabel {{ color: white; background: {NG_COLOR.name()}; font-weight: bold; padding: 4px; }}")
        self.store_alarm.hide()
        # frame, opacity, ROI
        self.view = FrameView()
        self.view.roiDrawn.connect(self._roi_drawn)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(100 * opacity))
        self.opacity.setAccessibleName("heat map opacity")
        self.opacity.valueChanged.connect(self._opacity_moved)
        self.show_regions = QCheckBox("Regions")
        self.show_regions.setChecked(True)
        self.show_regions.setToolTip("Outline the defect regions (heat at or above the model's region level)")
        self.show_regions.toggled.connect(self._redraw)
        self.regions_label = QLabel("")
        self.regions_label.setObjectName("hint")
        self.roi_edit = QLineEdit()
        self.roi_edit.setPlaceholderText("whole frame")
        self.roi_edit.setToolTip("Region of interest x,y,w,h in frame pixels; only it is inspected")
        self.roi_edit.setMaximumWidth(160)
        self.roi_edit.editingFinished.connect(lambda: self.roiTextEntered.emit(self.roi_edit.text()))
        self.draw_roi = QPushButton("Draw ROI")
        self.draw_roi.setCheckable(True)
        self.draw_roi.toggled.connect(self._draw_mode)
        clear_roi = QPushButton("Whole frame")
        clear_roi.clicked.connect(lambda: self.roiRequested.emit(None))
        under = QHBoxLayout()
        under.addWidget(self.show_regions)
        under.addWidget(self.regions_label)
        under.addSpacing(12)
        under.addWidget(QLabel("Opacity"))
        under.addWidget(self.opacity, 1)
        under.addSpacing(12)
        under.addWidget(QLabel("ROI"))
        under.addWidget(self.roi_edit)
        under.addWidget(self.draw_roi)
        under.addWidget(clear_roi)
        # review: pause on NG, recent NG frames
        self.pause_on_ng = QCheckBox("Pause on NG")
        self.resume_button = QPushButton("Resume")
        self.resume_button.clicked.connect(self.resumeRequested)
        self.prev_ng = QPushButton("◀ NG")
        self.next_ng = QPushButton("NG ▶")
        self.prev_ng.setToolTip("Previous NG frame (Page Up)")
        self.next_ng.setToolTip("Next NG frame (Page Down)")
        self.prev_ng.clicked.connect(lambda: self.step_ng(-1))
        self.next_ng.clicked.connect(lambda: self.step_ng(+1))
        self.back_live = QPushButton("Back to live")
        self.back_live.clicked.connect(self.backToLiveRequested)
        self.ng_label = QLabel("")
        review = QHBoxLayout()
        for w in (self.pause_on_ng, self.resume_button, self.prev_ng, self.next_ng, self.back_live, self.ng_label):
            review.addWidget(w)
        review.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(banner)
        layout.addWidget(self.store_alarm)
        layout.addWidget(self.view, 1)
        layout.addLayout(under)
        layout.addLayout(review)

    # --- the result --------------------------------------------------------------------------------
    def show_result(self, result) -> None:
        self.result = result
        self._redraw()

    def _redraw(self) -> None:
        r = self.result
        if r is None:
            return
        self.view.set_image(r.overlay(self.opacity.value() / 100))
        self.view.set_roi(r.roi)
        # cached on the prediction: the live loop finds them in its inference thread to store them
        self.view.set_outlines(frame_outlines(r) if self.show_regions.isChecked() else [])
        self.regions_label.setText(regions_text(r.prediction))
        self.badge.set_decision(r.decision)
        rule = f" &nbsp;·&nbsp; {html.escape(r.prediction.reason)}" if r.prediction.rules is not None else ""
        self.score_label.setText(score_text(r.score, r.threshold, r.decision) + rule)
        self.detail_label.setText(describe(r))

    def show_paused(self) -> None:
        """The run stopped at the NG part on screen until the operator deals with it."""
        if self.result is not None:
            self.detail_label.setText("paused on NG — mark it, or Resume (R)  ·  " + describe(self.result))

    def _opacity_moved(self, value: int) -> None:
        self._redraw()
        self.opacityChanged.emit(value / 100)

    # --- the source's state and the storage alarm --------------------------------------------------
    def show_state(self, change) -> None:
        text, color = STATE_TEXT.get(change.state.value, (change.state.value, None))
        if change.state.value == "lost":
            text = f"LOST — retry {change.attempt} in {change.retry_in_s:.1f} s"
        self.state_label.setText(text)
        self.state_label.setToolTip(change.message)
        self.state_label.setStyleSheet(f"QLabel {{ color: {color.name()}; font-weight: bold; }}" if color else "")

    def show_store_alarm(self, stats) -> None:
        """Stays up for the rest of a run that lost results; cleared when a new run stores again."""
        if stats.unsaved:
            self.store_alarm.setText(f"⚠ {stats.unsaved} result(s) NOT stored — {stats.store_alarm}")
            self.store_alarm.show()
        elif stats.running:
            self.store_alarm.hide()

    # --- the region of interest --------------------------------------------------------------------
    def show_roi(self, roi) -> None:
        self.roi_edit.setText(",".join(str(int(v)) for v in roi) if roi else "")
        self.view.set_roi(roi)

    def _roi_drawn(self, roi) -> None:
        self.draw_roi.setChecked(False)
        self.roiRequested.emit(roi)

    def _draw_mode(self, on: bool) -> None:
        self.view.draw_mode = on
        self.view.setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)

    # --- review of the recent NG frames ------------------------------------------------------------
    def new_run(self) -> None:
        self.ng_history.clear()
        self.ng_index = -1
        self.end_review()
        self.result = None

    def add_ng(self, results: list) -> None:
        self.ng_history.extend(results)
        if len(self.ng_history) > KEEP_NG:
            del self.ng_history[: len(self.ng_history) - KEEP_NG]
            self.ng_index = min(self.ng_index, len(self.ng_history) - 1)

    def step_ng(self, delta: int) -> None:
        """Review: the previous (``delta`` < 0) or next recent NG frame (``resultChosen``)."""
        if not self.ng_history:
            return
        if not self.reviewing:
            self.reviewing = True
            self.ng_index = len(self.ng_history) - 1 if delta < 0 else 0
            if delta < 0 and self.result is self.ng_history[-1] and len(self.ng_history) > 1:
                self.ng_index -= 1
        else:
            self.ng_index = min(max(self.ng_index + delta, 0), len(self.ng_history) - 1)
        self.ng_label.setText(f"NG {self.ng_index + 1} of {len(self.ng_history)} (recent)")
        self.resultChosen.emit(self.ng_history[self.ng_index])

    def end_review(self) -> None:
        self.reviewing = False
        self.ng_label.setText("")

    def update_buttons(self, paused: bool) -> None:
        self.resume_button.setEnabled(paused)
        self.prev_ng.setEnabled(bool(self.ng_history))
        self.next_ng.setEnabled(bool(self.ng_history))
        self.back_live.setEnabled(self.reviewing or paused)
