"""The Live page: a camera (or stream, video file, watched folder) inspected part by part.

Choose a source and a model, start. The frame is shown with the heat map over the inspected
region (opacity slider), a big OK/NG banner, the score against the threshold, a scrolling trend
of recent scores, counters (inspected, NG, NG rate), FPS and frame latency, and the state of the
source (a lost camera is retried and shown, never the end of the session). A region of interest
can be typed or drawn on the frame. Pause on NG stops at each NG part until resumed; the recent
NG frames can be stepped through. On the result shown, the operator marks "good — false alarm"
or "defect — confirmed"; "Retrain" fine-tunes a new version in the background while inspection
goes on, then shows current vs new for the operator to promote (hot-swapped) or discard. Any
earlier version can be put back in use. The History tab lists past results with filters and
exports CSV.

The page runs the core's headless ``LiveInspector`` (its own two threads); the engine reports
through callbacks into small thread-safe buffers that a UI timer drains ~15 times a second, so a
fast camera never floods the event loop. Retraining runs as a ``Job`` (superqt thread worker).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeySequence, QPainter, QPen, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from inspector.gui.history_page import HistoryView
from inspector.gui.widgets.decision import NG_COLOR, OK_COLOR, DecisionBadge
from inspector.gui.widgets.image_view import ImageView
from inspector.gui.widgets.message_bar import MessageBar
from inspector.gui.widgets.plots import ThemedPlot
from inspector.gui.workers import Job, run_job

log = logging.getLogger(__name__)

TREND_POINTS = 300
KEEP_NG = 30
STATE_TEXT = {
    "connecting": ("connecting…", None),
    "live": ("live", OK_COLOR),
    "lost": ("LOST", NG_COLOR),
    "ended": ("ended", None),
}


# --- the frame with the ROI ------------------------------------------------------------------------
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

    def paintEvent(self, event) -> None:  # noqa: N802
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

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self.draw_mode and self._pixmap is not None and event.button() == Qt.MouseButton.LeftButton:
            self._drag = (event.position(), event.position())
            self.update()
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._drag is not None:
            self._drag = (self._drag[0], event.position())
            self.update()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
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


# --- current vs new ----------------------------------------------------------------------------------
class ComparisonDialog(QDialog):
    """Current vs new version on the same images; Promote / Discard / Decide later."""

    PROMOTE, DISCARD, LATER = 1, 2, 0

    def __init__(self, result, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result = result
        new, current = result.entry, result.parent
        self.setWindowTitle(f"Retrained: {new.name}@v{new.version} vs {current.name}@v{current.version}")
        rows = result.comparison.rows()
        table = QTableWidget(len(rows), 4)
        table.setHorizontalHeaderLabels(["", f"current (v{current.version})", f"new (v{new.version})", "better"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                item = QTableWidgetItem(value)
                if j == 3 and value in ("new", "current"):
                    item.setForeground(OK_COLOR if value == "new" else NG_COLOR)
                if j in (1, 2):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(i, j, item)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        table.resizeColumnsToContents()
        table.setMinimumWidth(620)
        self.table = table
        pool = result.entry.info.training.get("retrain", {}).get("pool", {})
        note = QLabel(
            f"v{new.version} was fine-tuned from v{current.version} on its original good images plus "
            f"{len(pool.get('good', []))} image(s) marked as false alarms, and calibrated on good images neither "
            "version trained on. Both are measured at their own threshold on the same held-out good images, the "
            "confirmed defects and synthetic defects painted on the held-out images. Inspection goes on with "
            f"v{current.version} until you promote."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox()
        self.promote_button = buttons.addButton(f"Promote v{new.version}", QDialogButtonBox.ButtonRole.AcceptRole)
        self.discard_button = buttons.addButton(f"Discard v{new.version}", QDialogButtonBox.ButtonRole.DestructiveRole)
        self.later_button = buttons.addButton("Decide later", QDialogButtonBox.ButtonRole.RejectRole)
        self.promote_button.clicked.connect(lambda: self.done(self.PROMOTE))
        self.discard_button.clicked.connect(lambda: self.done(self.DISCARD))
        self.later_button.clicked.connect(lambda: self.done(self.LATER))
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(table)
        layout.addWidget(buttons)


# --- the page ----------------------------------------------------------------------------------------
class _Inbox:
    """What the engine's threads hand to the UI timer, bounded whatever the UI does: the latest
    result, the recent NG results, and (seq, score, NG) of recent results for the trend."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latest = None
        self.ng: collections.deque = collections.deque(maxlen=KEEP_NG)
        self.points: collections.deque = collections.deque(maxlen=TREND_POINTS)
        self.states: list = []
        self.errors: collections.deque = collections.deque(maxlen=20)

    def add(self, result) -> None:
        with self.lock:
            self.latest = result
            self.points.append((result.seq, result.score, result.decision == "NG"))
            if result.decision == "NG":
                self.ng.append(result)

    def drain(self):
        with self.lock:
            latest, ng, points, states, errors = self.latest, list(self.ng), list(self.points), self.states, list(self.errors)
            self.latest = None
            self.ng.clear()
            self.points.clear()
            self.errors.clear()
            self.states = []
        return latest, ng, points, states[-50:], errors


class LivePage(QWidget):
    """Self-contained: ``LivePage(session=None, settings=None, registry=None, store_path=None)``.

    ``registry`` defaults to the session's (else the default registry); ``store_path`` to the
    default results database. ``start()``/``stop()`` drive it like the buttons do.
    """

    started = Signal()
    stopped = Signal()
    resultShown = Signal(object)  # the LiveResult now on screen
    retrainFinished = Signal(object)  # RetrainResult
    modelSwapped = Signal(str)  # "name@vN" now in use

    def __init__(self, session=None, settings=None, registry=None, store_path: str | Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self._registry = registry
        self.store_path = Path(store_path) if store_path else None
        self.store = None
        self.live = None
        self.shown = None  # the LiveResult on screen
        self.reviewing = False
        self.ng_history: list = []
        self.ng_index = -1
        self.retrain_job: Job | None = None
        self.load_job: Job | None = None
        self.confirm_dialogs = True  # tests switch the promote/discard dialog off
        self._inbox = _Inbox()
        self._scores: collections.deque = collections.deque(maxlen=TREND_POINTS)
        self._last_state = None
        self._model_name = ""
        self._build()
        self._timer = QTimer(self, interval=66, timeout=self._tick)
        self._set_running(False)
        self.refresh_models()

    # --- layout ------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.message_bar = MessageBar()
        # source and model
        self.source = QComboBox()
        self.source.setEditable(True)
        self.source.setMinimumContentsLength(28)
        self.source.lineEdit().setPlaceholderText("camera index (0), rtsp://… or http://…, video file or folder")
        self.source.setToolTip("A camera index, a stream URL, a video file, or a folder whose new images are inspected")
        for item in self._recent_sources() or ["0"]:
            self.source.addItem(item)
        browse_video = QPushButton("Video…")
        browse_video.clicked.connect(self._browse_video)
        browse_folder = QPushButton("Folder…")
        browse_folder.clicked.connect(self._browse_folder)
        self.loop = QCheckBox("Loop video")
        self.loop.setChecked(True)
        self.realtime = QCheckBox("Real time")
        self.realtime.setChecked(True)
        self.realtime.setToolTip("Play a video file at its frame rate like a camera (frames may be dropped); "
                                 "off: inspect every frame as fast as possible")
        self.model = QComboBox()
        self.model.setMinimumContentsLength(18)
        self.model.setToolTip("The registered model; live inspection uses its version in use")
        self.model.currentIndexChanged.connect(self._model_changed)
        self.keep_ok = QSpinBox()
        self.keep_ok.setRange(0, 100000)
        self.keep_ok.setSpecialValueText("none")
        self.keep_ok.setPrefix("every ")
        self.keep_ok.setValue(int(self.settings.get("live/keep_ok_every", 0)) if self.settings is not None else 0)
        self.keep_ok.setToolTip("Also keep the image of every N-th OK frame (NG frames are always kept)")
        self.keep_ok.valueChanged.connect(self._keep_ok_changed)
        self.start_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Start")
        self.stop_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaStop), "Stop")
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        top = QGridLayout()
        top.addWidget(QLabel("Source"), 0, 0)
        top.addWidget(self.source, 0, 1)
        top.addWidget(browse_video, 0, 2)
        top.addWidget(browse_folder, 0, 3)
        top.addWidget(self.loop, 0, 4)
        top.addWidget(self.realtime, 0, 5)
        top.addWidget(QLabel("Model"), 1, 0)
        top.addWidget(self.model, 1, 1)
        top.addWidget(self.start_button, 1, 2)
        top.addWidget(self.stop_button, 1, 3)
        top.addWidget(QLabel("Keep OK images"), 1, 4)
        top.addWidget(self.keep_ok, 1, 5)
        top.setColumnStretch(1, 1)

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

        # frame, opacity, ROI
        self.view = FrameView()
        self.view.roiDrawn.connect(self._roi_drawn)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(100 * (self.settings.opacity if self.settings is not None else 0.5)))
        self.opacity.setAccessibleName("heat map opacity")
        self.opacity.valueChanged.connect(lambda _: self._redisplay())
        self.roi_edit = QLineEdit()
        self.roi_edit.setPlaceholderText("whole frame")
        self.roi_edit.setToolTip("Region of interest x,y,w,h in frame pixels; only it is inspected")
        self.roi_edit.setMaximumWidth(160)
        self.roi_edit.editingFinished.connect(self._roi_typed)
        self.draw_roi = QPushButton("Draw ROI")
        self.draw_roi.setCheckable(True)
        self.draw_roi.toggled.connect(self._draw_mode)
        clear_roi = QPushButton("Whole frame")
        clear_roi.clicked.connect(lambda: self.set_roi(None))
        under = QHBoxLayout()
        under.addWidget(QLabel("Opacity"))
        under.addWidget(self.opacity, 1)
        under.addSpacing(12)
        under.addWidget(QLabel("ROI"))
        under.addWidget(self.roi_edit)
        under.addWidget(self.draw_roi)
        under.addWidget(clear_roi)

        # review: pause on NG, recent NG frames
        self.pause_on_ng = QCheckBox("Pause on NG")
        self.pause_on_ng.toggled.connect(self._pause_on_ng_toggled)
        self.resume_button = QPushButton("Resume")
        self.resume_button.clicked.connect(self.resume)
        self.prev_ng = QPushButton("◀ NG")
        self.next_ng = QPushButton("NG ▶")
        self.prev_ng.setToolTip("Previous NG frame (Page Up)")
        self.next_ng.setToolTip("Next NG frame (Page Down)")
        self.prev_ng.clicked.connect(lambda: self.step_ng(-1))
        self.next_ng.clicked.connect(lambda: self.step_ng(+1))
        self.back_live = QPushButton("Back to live")
        self.back_live.clicked.connect(self.back_to_live)
        self.ng_label = QLabel("")
        review = QHBoxLayout()
        for w in (self.pause_on_ng, self.resume_button, self.prev_ng, self.next_ng, self.back_live, self.ng_label):
            review.addWidget(w)
        review.addStretch(1)

        # storage alarm: results that were inspected but NOT stored (disk full, database locked...)
        self.store_alarm = QLabel("")
        self.store_alarm.setObjectName("storeAlarm")
        self.store_alarm.setAccessibleName("storage alarm")
        self.store_alarm.setWordWrap(True)
        self.store_alarm.setStyleSheet(f"QLabel {{ color: white; background: {NG_COLOR.name()}; font-weight: bold; padding: 4px; }}")
        self.store_alarm.hide()

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(banner)
        ll.addWidget(self.store_alarm)
        ll.addWidget(self.view, 1)
        ll.addLayout(under)
        ll.addLayout(review)

        # counters
        self.counters = {key: QLabel("–") for key in ("inspected", "ng", "rate", "fps", "latency", "dropped", "unsaved",
                                                       "unjudged", "model")}
        counters = QFormLayout()
        for key, title in (("inspected", "Inspected"), ("ng", "NG"), ("rate", "NG rate"), ("fps", "FPS"),
                           ("latency", "Latency p50 / p95"), ("dropped", "Frames dropped"), ("unsaved", "NOT stored"),
                           ("unjudged", "Not judged"), ("model", "Model in use")):
            self.counters[key].setAccessibleName(title)
            counters.addRow(title, self.counters[key])
        counter_box = QGroupBox("Counters")
        counter_box.setLayout(counters)

        # trend
        self.trend = ThemedPlot("Recent scores", "", "score")
        self.trend.setMinimumHeight(150)
        self.trend_curve = self.trend.plot_item.plot([], [], pen=self.trend.palette().highlight().color())
        self.trend_ng = self.trend.plot_item.plot([], [], pen=None, symbol="o", symbolSize=6,
                                                  symbolBrush=NG_COLOR, symbolPen=None)
        import pyqtgraph as pg

        self.trend_threshold = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(NG_COLOR, style=Qt.PenStyle.DashLine))
        self.trend.plot_item.addItem(self.trend_threshold)
        self.trend_threshold.hide()

        # feedback and retraining
        self.false_alarm_button = QPushButton("Good — false alarm")
        self.false_alarm_button.setToolTip("This part is good: keep it as a good sample for the next version (F)")
        self.confirmed_button = QPushButton("Defect — confirmed")
        self.confirmed_button.setToolTip("This part is defective: keep it to check new versions against (D)")
        self.false_alarm_button.clicked.connect(lambda: self.give_feedback("false_alarm"))
        self.confirmed_button.clicked.connect(lambda: self.give_feedback("confirmed"))
        self.pool_label = QLabel("")
        self.pool_label.setWordWrap(True)
        self.retrain_button = QPushButton("Retrain")
        self.retrain_button.setToolTip("Fine-tune a new version from the one in use, on its good images plus the "
                                       "false alarms; inspection goes on meanwhile")
        self.retrain_button.clicked.connect(self.retrain)
        self.retrain_cancel = QPushButton("Cancel")
        self.retrain_cancel.clicked.connect(lambda: self.retrain_job and self.retrain_job.cancel())
        self.retrain_progress = QProgressBar()
        self.retrain_progress.setTextVisible(True)
        self.retrain_status = QLabel("")
        self.retrain_status.setWordWrap(True)
        self.versions = QComboBox()
        self.use_version = QPushButton("Use this version")
        self.use_version.setToolTip("Promote or roll back: the chosen version is put in use (hot-swapped)")
        self.use_version.clicked.connect(lambda: self.activate_version(self.versions.currentData()))
        feedback = QVBoxLayout()
        fb_row = QHBoxLayout()
        fb_row.addWidget(self.false_alarm_button)
        fb_row.addWidget(self.confirmed_button)
        feedback.addLayout(fb_row)
        feedback.addWidget(self.pool_label)
        rt_row = QHBoxLayout()
        rt_row.addWidget(self.retrain_button)
        rt_row.addWidget(self.retrain_progress, 1)
        rt_row.addWidget(self.retrain_cancel)
        feedback.addLayout(rt_row)
        feedback.addWidget(self.retrain_status)
        v_row = QHBoxLayout()
        v_row.addWidget(QLabel("Versions"))
        v_row.addWidget(self.versions, 1)
        v_row.addWidget(self.use_version)
        feedback.addLayout(v_row)
        feedback_box = QGroupBox("Feedback and retraining")
        feedback_box.setLayout(feedback)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(counter_box)
        rl.addWidget(self.trend, 1)
        rl.addWidget(feedback_box)

        splitter = QSplitter()
        splitter.setObjectName("liveSplitter")
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        live_tab = QWidget()
        lt = QVBoxLayout(live_tab)
        lt.setContentsMargins(0, 0, 0, 0)
        lt.addLayout(top)
        lt.addWidget(splitter, 1)

        self.history = HistoryView()
        self.history.message.connect(self.show_message)
        self.history.feedbackGiven.connect(lambda *_: self._update_pool())
        self.tabs = QTabWidget()
        self.tabs.addTab(live_tab, "Live")
        self.tabs.addTab(self.history, "History")
        self.tabs.currentChanged.connect(lambda i: i == 1 and self._open_history())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.tabs, 1)

        context = Qt.ShortcutContext.WidgetWithChildrenShortcut
        for keys, slot in (("F", lambda: self.give_feedback("false_alarm")), ("D", lambda: self.give_feedback("confirmed")),
                           ("PgUp", lambda: self.step_ng(-1)), ("PgDown", lambda: self.step_ng(+1)),
                           ("R", self.resume), ("Esc", self.back_to_live)):
            QShortcut(QKeySequence(keys), self, slot, context=context)

    # --- helpers -----------------------------------------------------------------------------------
    def registry(self):
        if self._registry is None:
            if self.session is not None and hasattr(self.session, "registry"):
                return self.session.registry()
            from inspector.engine.registry import ModelRegistry

            self._registry = ModelRegistry()
        return self._registry

    def show_message(self, text: str, level: str = "info") -> None:
        (log.error if level == "error" else log.info)("%s", text)
        self.message_bar.show_message(text, level)

    def _recent_sources(self) -> list[str]:
        return [str(s) for s in self.settings.get_json("live/recent_sources", [])] if self.settings is not None else []

    def _remember_source(self, text: str) -> None:
        if self.settings is None:
            return
        recent = [text] + [s for s in self._recent_sources() if s != text]
        self.settings.set_json("live/recent_sources", recent[:8])
        if self.model.currentData():
            self.settings.set("live/model", self.model.currentData())

    def _browse_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Video file", "", "Videos (*.avi *.mp4 *.mkv *.mov);;All files (*)")
        if path:
            self.source.setCurrentText(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder to watch for new images")
        if path:
            self.source.setCurrentText(path)

    def _open_store(self):
        if self.store is None:
            from inspector.engine.results_store import ResultsStore

            self.store = ResultsStore(self.store_path, save_ok_every=self.keep_ok.value())
            self.history.set_store(self.store)
        return self.store

    def _keep_ok_changed(self, value: int) -> None:
        if self.store is not None:
            self.store.save_ok_every = int(value)  # read by the store at each OK result
        if self.settings is not None:
            self.settings.set("live/keep_ok_every", int(value))

    def _open_history(self) -> None:
        try:
            from inspector.engine.results_store import default_db_path

            path = self.store_path or default_db_path()
            if self.store is None and path.is_file():
                self._open_store()
            self.history.refresh()
        except Exception as e:  # noqa: BLE001
            self.show_message(f"Could not open the results database: {e}", "error")

    # --- models ------------------------------------------------------------------------------------
    def refresh_models(self) -> Job:
        """List the registry's models (in the background: the registry loads torch)."""
        def work(report, cancel):
            registry = self.registry()
            return [(name, registry.active(name).version) for name in registry.names()]

        job = run_job("Listing models for live inspection", work, parent=self)
        job.quiet = True
        job.succeeded.connect(self._fill_models)
        job.failed.connect(lambda m: self.show_message(f"Could not list the models: {m}", "error"))
        return job

    def _fill_models(self, names: list[tuple[str, int]]) -> None:
        wanted = self.model.currentData() or (self.settings.get("live/model", "") if self.settings is not None else "")
        if not wanted and self.session is not None and getattr(self.session, "predictor", None) is not None:
            wanted = self.session.predictor.info.name
        self.model.blockSignals(True)
        self.model.clear()
        for name, version in names:
            self.model.addItem(f"{name}  (v{version} in use)", name)
        index = self.model.findData(wanted)
        self.model.setCurrentIndex(index if index >= 0 else 0)
        self.model.blockSignals(False)
        if not names:
            self.model.setPlaceholderText("no trained models yet: train one first")
        self._model_changed()

    def _model_changed(self) -> None:
        self._model_name = self.model.currentData() or ""
        self._fill_versions()
        self._update_pool()
        self._update_buttons()

    def _fill_versions(self) -> None:
        self.versions.clear()
        name = self._model_name
        if not name:
            return
        try:
            from inspector.engine.retrain import lineage

            rows = lineage(self.registry(), name)
        except Exception as e:  # noqa: BLE001
            self.show_message(f"Could not read the versions of {name}: {e}", "error")
            return
        for row in reversed(rows):
            parent = f", from {row['parent'].split('@')[-1]}" if row["parent"] else ""
            extra = f", +{row['pool_good']} false alarms" if row["pool_good"] else ""
            mark = "  ● in use" if row["active"] else ""
            self.versions.addItem(f"v{row['version']}  {row['created'][:16].replace('T', ' ')}{parent}{extra}{mark}", row["version"])

    def _update_pool(self) -> None:
        if not self._model_name:
            self.pool_label.setText("")
            return
        from inspector.engine.retrain import FeedbackPool

        try:
            counts = FeedbackPool(self._model_name).counts()
        except ValueError as e:  # a model file whose name cannot name a pool folder
            self.pool_label.setText(f"No feedback pool: {e}")
            return
        self.pool_label.setText(
            f"Pool of {self._model_name}: {counts['good']} false alarm(s) to learn from, "
            f"{counts['defects']} confirmed defect(s)"
        )

    # --- start / stop ------------------------------------------------------------------------------
    def start(self) -> None:
        if self.live is not None and self.live.running:
            return
        text = self.source.currentText().strip()
        name = self._model_name
        if not name:
            self.show_message("Choose a model first (train one on the Train page if the list is empty).", "warning")
            return
        try:
            from inspector.data.sources import open_source

            source = open_source(text, loop=self.loop.isChecked(), realtime=self.realtime.isChecked(),
                                 on_unreadable=lambda p, r: self._inbox_error(f"skipped unreadable image {p.name}: {r}"))
            roi = self._parse_roi(self.roi_edit.text())
            self._open_store()
        except Exception as e:  # noqa: BLE001 — bad source text, bad ROI, unwritable database: a message
            self.show_message(str(e), "error")
            return
        self._remember_source(text)
        self.start_button.setEnabled(False)
        self.state_label.setText("loading model…")

        def load(report, cancel):
            from inspector.engine.bundle import ModelBundle
            from inspector.engine.predictor import Predictor

            entry = self.registry().active(name)
            return Predictor(ModelBundle.load(entry.path), "auto")

        self.load_job = run_job(f"Loading {name} for live inspection", load, parent=self)
        self.load_job.succeeded.connect(lambda predictor: self._begin(source, predictor, roi))
        self.load_job.failed.connect(lambda m: (self.show_message(f"Could not load {name}: {m}", "error"), self._set_running(False)))

    def _begin(self, source, predictor, roi) -> None:
        from inspector.engine.live import LiveInspector

        inbox = self._inbox
        inbox.drain()

        def on_result(result):
            inbox.add(result)

        def on_state(change):
            with inbox.lock:
                inbox.states.append(change)

        said: dict[str, float] = {}  # kind -> when last shown: a full disk fails every frame; the alarm counts them

        def on_error(error):
            now = time.monotonic()
            if not error.fatal and now - said.get(error.kind, -1e9) < 30.0:
                return
            said[error.kind] = now
            with inbox.lock:
                inbox.errors.append(("error" if error.fatal or error.kind.startswith("store") else "warning", error.message))

        self.live = LiveInspector(source, predictor, self.store, roi=roi, pause_on_ng=self.pause_on_ng.isChecked(),
                                  keep_recent_ng=KEEP_NG, on_result=on_result, on_state=on_state, on_error=on_error)
        self.live.follow_registry(self.registry(), predictor.info.name, interval_s=1.0)  # promotions made elsewhere
        self._scores.clear()
        self.ng_history.clear()
        self.ng_index = -1
        self.reviewing = False
        self.shown = None
        self.trend_threshold.setValue(predictor.threshold)
        self.trend_threshold.show()
        self.live.start()
        self._timer.start()
        self._set_running(True)
        self.started.emit()

    def _inbox_error(self, text: str) -> None:
        with self._inbox.lock:
            self._inbox.errors.append(("warning", text))

    def stop(self) -> None:
        if self.load_job is not None and self.load_job.running:
            self.load_job.succeeded.disconnect()
        if self.live is not None:
            self.live.stop(timeout=3.0)
        self._tick()
        self._timer.stop()
        self._set_running(False)
        self.stopped.emit()

    def shutdown(self) -> None:
        """Stop everything (the window is closing)."""
        self.stop()
        if self.retrain_job is not None:
            self.retrain_job.cancel()
        if self.store is not None:
            self.store.close()
            self.store = None

    def is_running(self) -> bool:
        return self.live is not None and self.live.running

    def retrain_busy(self) -> bool:
        return self.retrain_job is not None and self.retrain_job.running

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.source.setEnabled(not running)
        self.model.setEnabled(not running)
        if not running:
            self.state_label.setText("stopped" if self.live is None else self.state_label.text())
        self._update_buttons()

    def _update_buttons(self) -> None:
        shown = self.shown
        can_mark = shown is not None and shown.record_id is not None
        self.false_alarm_button.setEnabled(can_mark)
        self.confirmed_button.setEnabled(can_mark)
        paused = self.live is not None and self.live.running and self.live.paused
        self.resume_button.setEnabled(paused)
        self.prev_ng.setEnabled(bool(self.ng_history))
        self.next_ng.setEnabled(bool(self.ng_history))
        self.back_live.setEnabled(self.reviewing or paused)
        busy = self.retrain_job is not None and self.retrain_job.running
        self.retrain_button.setEnabled(bool(self._model_name) and not busy)
        self.retrain_cancel.setVisible(busy)
        self.retrain_progress.setVisible(busy)
        self.use_version.setEnabled(self.versions.count() > 0 and not busy)

    # --- ROI ---------------------------------------------------------------------------------------
    @staticmethod
    def _parse_roi(text: str):
        from inspector.engine.live import parse_roi

        return parse_roi(text.strip() or None)

    def set_roi(self, roi) -> None:
        """ValueError (and nothing changed) when the live loop has seen frames and it does not fit in them."""
        if self.live is not None:
            self.live.set_roi(tuple(roi) if roi else None)
        self.roi_edit.setText(",".join(str(int(v)) for v in roi) if roi else "")
        self.view.set_roi(roi)

    def _roi_typed(self) -> None:
        try:
            self.set_roi(self._parse_roi(self.roi_edit.text()))
        except ValueError as e:
            self.show_message(str(e), "warning")

    def _roi_drawn(self, roi) -> None:
        self.draw_roi.setChecked(False)
        try:
            self.set_roi(roi)
        except ValueError as e:
            self.show_message(str(e), "warning")

    def _draw_mode(self, on: bool) -> None:
        self.view.draw_mode = on
        self.view.setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)

    # --- the UI timer: drain the engine's results --------------------------------------------------
    def _tick(self) -> None:
        live = self.live
        if live is None:
            return
        latest, ng, points, states, errors = self._inbox.drain()
        self._scores.extend(points)
        self.ng_history.extend(ng)
        if len(self.ng_history) > KEEP_NG:
            del self.ng_history[: len(self.ng_history) - KEEP_NG]
            self.ng_index = min(self.ng_index, len(self.ng_history) - 1)
        if states:
            self._show_state(states[-1])
        for level, text in errors[-3:]:
            self.show_message(text, level)
        if latest is not None and not self.reviewing:
            self.display(latest)
        if points:
            self._draw_trend()
        self._show_stats(live.stats())
        if live.paused and not self.reviewing and self.shown is not None:
            self.detail_label.setText("paused on NG — mark it, or Resume (R)  ·  " + self._details(self.shown))
        if live.finished.is_set() and self._timer.isActive():
            self._timer.stop()
            self._set_running(False)
            if live.fatal is not None:  # e.g. the ROI does not fit in the frames: stopped, say why
                self.show_message(f"Live inspection stopped: {live.fatal.message}", "error")
            self.stopped.emit()
        self._update_buttons()

    def _show_state(self, change) -> None:
        self._last_state = change
        text, color = STATE_TEXT.get(change.state.value, (change.state.value, None))
        if change.state.value == "lost":
            text = f"LOST — retry {change.attempt} in {change.retry_in_s:.1f} s"
        self.state_label.setText(text)
        self.state_label.setToolTip(change.message)
        self.state_label.setStyleSheet(f"QLabel {{ color: {color.name()}; font-weight: bold; }}" if color else "")

    def _show_stats(self, s) -> None:
        c = self.counters
        c["inspected"].setText(f"{s.inspected}")
        c["ng"].setText(f"{s.ng}")
        c["rate"].setText(f"{100 * s.ng_rate:.2f} %" if s.inspected else "–")
        c["fps"].setText(f"{s.fps:.1f}")
        c["latency"].setText(f"{s.latency_p50_ms:.0f} / {s.latency_p95_ms:.0f} ms" if s.inspected else "–")
        c["dropped"].setText(f"{s.dropped}")
        c["unsaved"].setText(f"{s.unsaved}")
        c["unsaved"].setStyleSheet(f"QLabel {{ color: {NG_COLOR.name()}; font-weight: bold; }}" if s.unsaved else "")
        c["unjudged"].setText(f"{s.unjudged}")
        c["unjudged"].setStyleSheet(f"QLabel {{ color: {NG_COLOR.name()}; font-weight: bold; }}" if s.unjudged else "")
        c["model"].setText(s.model)
        if s.unsaved:  # stays up for the rest of the run: results are being lost
            self.store_alarm.setText(f"⚠ {s.unsaved} result(s) NOT stored — {s.store_alarm}")
            self.store_alarm.show()
        elif s.running:
            self.store_alarm.hide()

    def _draw_trend(self) -> None:
        if not self._scores:
            return
        data = np.array(self._scores, dtype=np.float64)
        self.trend_curve.setData(data[:, 0], data[:, 1])
        ng = data[data[:, 2] > 0]
        self.trend_ng.setData(ng[:, 0], ng[:, 1])
        if self.shown is not None:
            self.trend_threshold.setValue(self.shown.threshold)

    # --- showing a result --------------------------------------------------------------------------
    def display(self, result) -> None:
        self.shown = result
        self._redisplay()
        self.resultShown.emit(result)
        self._update_buttons()

    def _redisplay(self) -> None:
        r = self.shown
        if r is None:
            return
        self.view.set_image(r.overlay(self.opacity.value() / 100))
        self.view.set_roi(r.roi)
        self.badge.set_decision(r.decision)
        relation = "above" if r.decision == "NG" else "not above"
        self.score_label.setText(
            f"<span style='font-size:14pt'><b>score {r.score:.5g}</b></span> &nbsp; {relation} the threshold {r.threshold:.5g}"
        )
        self.detail_label.setText(self._details(r))
        if self.settings is not None:
            self.settings.opacity = self.opacity.value() / 100

    @staticmethod
    def _details(r) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(r.frame.timestamp))
        name = f" {r.frame.name}" if r.frame.name else ""
        return (f"frame {r.frame.frame_id}{name} · {when} · {r.model_ref} · {r.latency_ms:.0f} ms"
                f"{'' if r.record_id is not None else ' · NOT STORED'}")

    # --- review ------------------------------------------------------------------------------------
    def step_ng(self, delta: int) -> None:
        if not self.ng_history:
            return
        if not self.reviewing:
            self.reviewing = True
            self.ng_index = len(self.ng_history) - 1 if delta < 0 else 0
            if delta < 0 and self.shown is self.ng_history[-1] and len(self.ng_history) > 1:
                self.ng_index -= 1
        else:
            self.ng_index = min(max(self.ng_index + delta, 0), len(self.ng_history) - 1)
        self.ng_label.setText(f"NG {self.ng_index + 1} of {len(self.ng_history)} (recent)")
        self.display(self.ng_history[self.ng_index])

    def back_to_live(self) -> None:
        self.reviewing = False
        self.ng_label.setText("")
        if self.live is not None and self.live.paused:
            self.resume()
        elif self.live is not None and self.live.last_result is not None:
            self.display(self.live.last_result)

    def resume(self) -> None:
        if self.live is not None and self.live.paused:
            self.live.resume()
        self.reviewing = False
        self.ng_label.setText("")
        self._update_buttons()

    def _pause_on_ng_toggled(self, on: bool) -> None:
        if self.live is not None:
            self.live.pause_on_ng = on
            if not on and self.live.paused:
                self.resume()

    # --- feedback ----------------------------------------------------------------------------------
    def give_feedback(self, feedback: str) -> Path | None:
        r = self.shown
        if r is None or r.record_id is None or self.store is None:
            return None
        from inspector.engine.retrain import FeedbackPool, give_feedback

        try:
            path = give_feedback(self.store, r.record_id, feedback, image=r.prediction.image, pool=FeedbackPool(r.model))
        except Exception as e:  # noqa: BLE001
            self.show_message(f"Could not record the feedback: {e}", "error")
            return None
        words = "good — false alarm: kept as a good sample for the next version" if feedback == "false_alarm" else \
            "defect — confirmed: kept to check new versions against"
        self.show_message(f"Frame {r.frame.frame_id} marked {words}.", "info")
        self._update_pool()
        if self.live is not None and self.live.paused and self.pause_on_ng.isChecked():
            self.resume()  # the operator has dealt with the part that stopped the line
        return path

    # --- retraining --------------------------------------------------------------------------------
    def retrain(self, data=None, epochs: int | None = None) -> Job | None:
        """Fine-tune a new version in the background (``data``/``epochs`` for tests and experts)."""
        name = self._model_name
        if not name or (self.retrain_job is not None and self.retrain_job.running):
            return None

        def work(report, cancel):
            from inspector.engine.retrain import Retrainer

            return Retrainer(self.registry(), name, data=data, epochs=epochs, on_event=report, cancel=cancel).run()

        self.retrain_progress.setRange(0, 0)
        self.retrain_status.setText(f"Retraining {name}… inspection goes on with the version in use.")
        job = run_job(f"Retraining {name}", work, parent=self)
        job.progress.connect(self._retrain_progress)
        job.succeeded.connect(self._retrain_done)
        job.failed.connect(lambda m: (self.retrain_status.setText(""), self.show_message(f"Retraining failed: {m}", "error")))
        job.cancelled.connect(lambda: self.retrain_status.setText("Retraining cancelled; nothing was added."))
        job.finished.connect(self._update_buttons)
        self.retrain_job = job
        self._update_buttons()
        return job

    def _retrain_progress(self, event) -> None:
        steps = getattr(event, "steps", 0)
        if getattr(event, "phase", "") == "train" and steps:
            self.retrain_progress.setRange(0, steps)
            self.retrain_progress.setValue(event.step)
            self.retrain_progress.setFormat(f"epoch {event.epoch}/{event.epochs}")
        elif getattr(event, "phase", "") == "calibrate":
            self.retrain_progress.setRange(0, 0)
            self.retrain_progress.setFormat("calibrating and comparing…")

    def _registry_changed(self) -> None:
        """Tell the other pages (Models) that versions changed."""
        if self.session is not None and hasattr(self.session, "registryChanged"):
            self.session.registryChanged.emit()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self.is_running() and self.model.count() == 0:
            self.refresh_models()  # e.g. the first model was just trained on the Train page

    def _retrain_done(self, result) -> None:
        self.retrain_status.setText(f"{result.entry.name}@v{result.entry.version} is ready (not in use yet).")
        self._fill_versions()
        self._registry_changed()
        self.retrainFinished.emit(result)
        if not self.confirm_dialogs:
            return
        dialog = ComparisonDialog(result, self)
        choice = dialog.exec()
        if choice == ComparisonDialog.PROMOTE:
            self.activate_version(result.entry.version)
        elif choice == ComparisonDialog.DISCARD:
            self.discard_version(result.entry.version)

    def activate_version(self, version: int | None) -> None:
        """Promote or roll back: put ``version`` in use and hot-swap the running loop to it."""
        name = self._model_name
        if not name or version is None:
            return
        from inspector.engine.bundle import ModelBundle
        from inspector.engine.predictor import Predictor
        from inspector.engine.retrain import promote

        try:
            entry = promote(self.registry(), name, int(version))
            if self.live is not None and self.live.running:
                self.live.set_predictor(Predictor(ModelBundle.load(entry.path), "auto"))
        except Exception as e:  # noqa: BLE001
            self.show_message(f"Could not switch to {name}@v{version}: {e}", "error")
            return
        self._fill_versions()
        index = self.model.findData(name)
        if index >= 0:
            self.model.setItemText(index, f"{name}  (v{version} in use)")
        self.retrain_status.setText(f"{name}@v{version} is in use.")
        self._registry_changed()
        self.show_message(f"{name}@v{version} is now in use" + (" (swapped without stopping)." if self.is_running() else "."), "info")
        self.modelSwapped.emit(f"{name}@v{version}")

    def discard_version(self, version: int) -> None:
        from inspector.engine.retrain import discard

        try:
            discard(self.registry(), self._model_name, int(version))
        except Exception as e:  # noqa: BLE001
            self.show_message(f"Could not discard v{version}: {e}", "error")
            return
        self._fill_versions()
        self.retrain_status.setText(f"v{version} discarded.")
        self._registry_changed()


# --- the main window's hook ---------------------------------------------------------------------------
class _CloseWatcher(QObject):
    """Sees the window's close first: asks before stopping a running live inspection, then stops it
    (the window itself knows nothing about the live loop)."""

    def __init__(self, page: LivePage, window) -> None:
        super().__init__(window)
        self.page = page
        self.window = window

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if obj is not self.window or event.type() != QEvent.Type.Close:
            return False
        if self.page.is_running() and getattr(self.window, "confirm_close", True):
            answer = QMessageBox.question(
                self.window, "Quit during live inspection?",
                "Live inspection is running. Stop it and quit? (Every result so far is saved.)",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return True
        self.page.shutdown()
        return False


def add_to(window) -> LivePage:
    """Called by the main window (``EXTENSION_PAGES``): adds the Live page."""
    page = LivePage(session=getattr(window, "session", None), settings=getattr(window, "settings", None))
    window.add_page("live", "Live", page, window.style().standardIcon(QStyle.StandardPixmap.SP_MediaSeekForward))
    page.message_bar.hide()
    if hasattr(window, "show_error"):  # use the window's message strip rather than the page's own
        page.show_message = lambda text, level="info": (window.show_error(text) if level == "error" else window.show_info(text))  # type: ignore[method-assign]
    page.history.message.disconnect()
    page.history.message.connect(lambda text, level: page.show_message(text, level))
    window.installEventFilter(_CloseWatcher(page, window))
    if hasattr(getattr(window, "session", None), "registryChanged"):
        window.session.registryChanged.connect(lambda: page.is_running() or page.retrain_busy() or page.refresh_models())
    window.live_page = page
    return page

