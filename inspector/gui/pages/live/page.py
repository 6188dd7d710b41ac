"""The Live page: a camera (or stream, video file, watched folder) inspected part by part.

Choose a source and a model, start. The frame is shown with the heat map over the inspected
region, a big OK/NG banner, the score against the threshold, a scrolling trend of recent scores,
counters, and the state of the source (a lost camera is retried and shown, never the end of the
session). A region of interest can be typed or drawn. Pause on NG stops at each NG part until
resumed; the recent NG frames can be stepped through. On the result shown, the operator marks
"good — false alarm" or "defect — confirmed"; "Retrain" fine-tunes a new version in the
background while inspection goes on, then shows current vs new to promote (hot-swapped) or
discard. Any earlier version can be put back in use. The Line I/O panel holds the station (name,
trigger, line outputs) the verdicts go to; a station file fills the whole page.

The work is the engine's ``LiveController`` (the same one ``inspector live`` drives); this page
only draws it. The run reports from its own threads into an ``Inbox`` that a UI timer drains ~15
times a second, so a fast camera never floods the event loop. Loading a model and retraining run
as ``Job``s (superqt thread workers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from inspector.engine.exported import is_exported
from inspector.engine.live import parse_roi
from inspector.engine.live_controller import LiveController
from inspector.engine.station import StationError
from inspector.gui.pages.live.comparison_dialog import ComparisonDialog
from inspector.gui.pages.live.counters import Counters, ScoreTrend
from inspector.gui.pages.live.feedback_panel import FeedbackPanel
from inspector.gui.pages.live.inbox import KEEP_NG, Inbox
from inspector.gui.pages.live.line_panel import LinePanel, choose_model, read_station
from inspector.gui.pages.live.live_view import LiveView
from inspector.gui.pages.live.source_panel import SourcePanel
from inspector.gui.widgets.message_bar import MessageBar
from inspector.gui.workers import Job, run_job
from inspector.engine.modelref import ref_text

log = logging.getLogger(__name__)

STOP_DRAIN_S = 0.5  # Stop waits this long at most for the line outputs to deliver the last verdicts

FEEDBACK_WORDS = {
    "false_alarm": "good — false alarm: kept as a good sample for the next version",
    "confirmed": "defect — confirmed: kept to check new versions against",
}


class LivePage(QWidget):
    """``LivePage(session=None, settings=None, registry=None, store_path=None, messages=None)``.

    ``registry`` defaults to the session's (else the default registry); ``store_path`` to the
    default results database. ``messages(text, level)`` shows the page's messages (the main
    window's strip); without it the page shows them in a strip of its own. ``start()``/``stop()``
    drive it like the buttons do.
    """

    started = Signal()
    stopped = Signal()
    resultShown = Signal(object)  # the LiveResult now on screen
    retrainFinished = Signal(object)  # RetrainResult
    modelSwapped = Signal(str)  # "name@vN" now in use

    def __init__(self, session=None, settings=None, registry=None, store_path: str | Path | None = None,
                 messages: Callable[[str, str], None] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self._messages = messages
        self.shown = None  # the LiveResult on screen
        self.retrain_job: Job | None = None
        self.load_job: Job | None = None
        self.confirm_dialogs = True  # tests switch the promote/discard dialog off
        self.station_exports: dict[str, str] = {}  # exported folders station files named: folder -> text
        self._inbox = Inbox()
        self._build()
        self.controller = LiveController(
            registry if registry is not None else (session.registry if session is not None else None),
            store_path=store_path, save_ok_every=self.source_panel.keep_ok.value(),
        )
        self._timer = QTimer(self, interval=66, timeout=self._tick)
        self._set_running(False)
        if session is not None:
            session.registryChanged.connect(self._refresh_when_idle)
            session.modelChanged.connect(self._refresh_when_idle)  # an exported model opened elsewhere joins the list
        self.refresh_models()

    # --- layout ------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.message_bar = None if self._messages is not None else MessageBar()
        self.source_panel = SourcePanel(self.settings)
        self.live_view = LiveView(self.settings.opacity if self.settings is not None else 0.5)
        self.counters = Counters()
        self.trend = ScoreTrend()
        self.feedback = FeedbackPanel()
        self.line_panel = LinePanel(lambda urls, name, timeout: self.controller.send_test_verdict(urls, name, timeout))

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.counters)
        rl.addWidget(self.trend, 1)
        rl.addWidget(self.line_panel)
        rl.addWidget(self.feedback)
        splitter = QSplitter()
        splitter.setObjectName("liveSplitter")
        splitter.addWidget(self.live_view)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if self.message_bar is not None:
            layout.addWidget(self.message_bar)
        layout.addWidget(self.source_panel)
        layout.addWidget(splitter, 1)

        sp, view, fb = self.source_panel, self.live_view, self.feedback
        sp.startRequested.connect(self.start)
        sp.stopRequested.connect(self.stop)
        sp.modelChosen.connect(self._model_chosen)
        sp.keepOkChanged.connect(lambda n: self.controller.set_save_ok_every(n))
        view.roiRequested.connect(self._apply_roi)
        view.roiTextEntered.connect(self.set_roi_text)
        view.resultChosen.connect(self.display)
        view.resumeRequested.connect(self.resume)
        view.backToLiveRequested.connect(self.back_to_live)
        view.pause_on_ng.toggled.connect(self._pause_on_ng_toggled)
        view.opacityChanged.connect(self._opacity_changed)
        fb.feedbackRequested.connect(self.give_feedback)
        fb.retrainRequested.connect(self.retrain)
        fb.cancelRequested.connect(lambda: self.retrain_job is not None and self.retrain_job.cancel())
        fb.versionRequested.connect(self.promote)
        self.line_panel.openRequested.connect(self.open_station)
        self.line_panel.saveRequested.connect(self.save_station)

        context = Qt.ShortcutContext.WidgetWithChildrenShortcut
        for keys, slot in (("F", lambda: self.give_feedback("false_alarm")), ("D", lambda: self.give_feedback("confirmed")),
                           ("PgUp", lambda: view.step_ng(-1)), ("PgDown", lambda: view.step_ng(+1)),
                           ("R", self.resume)):
            QShortcut(QKeySequence(keys), self, slot, context=context)

    # --- messages and the registry -------------------------------------------------------------------
    def show_message(self, text: str, level: str = "info") -> None:
        if self._messages is not None:
            self._messages(text, level)
            return
        (log.error if level == "error" else log.info)("%s", text)
        self.message_bar.show_message(text, level)

    def _registry_changed(self) -> None:
        """Tell the other pages (Models) that versions changed."""
        if self.session is not None:
            self.session.registryChanged.emit()

    def _refresh_when_idle(self) -> None:
        """The registry or the app's model changed elsewhere: list the models again, unless a run
        or a retraining holds the list."""
        if not (self.is_running() or self.retrain_busy()):
            self.refresh_models()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self.is_running() and self.source_panel.model.count() == 0:
            self.refresh_models()  # e.g. the first model was just trained on the Train page

    # --- models ------------------------------------------------------------------------------------
    def refresh_models(self) -> Job:
        """List the registry's models (in the background: the registry loads torch)."""
        job = run_job("Listing models for live inspection", lambda report, cancel: self.controller.models(), parent=self)
        job.quiet = True
        job.succeeded.connect(self._fill_models)
        job.failed.connect(lambda m: self.show_message(f"Could not list the models: {m}", "error"))
        return job

    def _fill_models(self, names: list[tuple[str, int]]) -> None:
        """The registered models, and the app's model when it is an export (listed by its folder)."""
        predictor = getattr(self.session, "predictor", None)
        exported = getattr(self.session, "exported", None)
        extra = [(str(exported.path), f"{exported.info.ref} exported ({exported.path.name})")] if exported is not None else []
        extra += [item for item in self.station_exports.items() if item[0] not in dict(extra)]
        preferred = str(exported.path) if exported is not None else (predictor.info.name if predictor is not None else "")
        self.source_panel.set_models(names, preferred=preferred, exported=extra)

    def _model_chosen(self, name: str) -> None:
        # an exported model has no versions, pool or retraining in the registry: those stay empty
        self.controller.select("" if _is_export(name) else name)
        self._fill_versions()
        self.update_pool()
        self._update_buttons()

    def _fill_versions(self) -> None:
        try:
            rows = self.controller.lineage()
        except Exception as e:  # noqa: BLE001
            self.feedback.show_versions([])
            self.show_message(f"Could not read the versions of {self.controller.model_name}: {e}", "error")
            return
        self.feedback.show_versions(rows)

    def update_pool(self) -> None:
        """The pool line of the chosen model (after feedback here or in the History page)."""
        name = self.controller.model_name
        if not name:
            self.feedback.show_pool("", None)
            return
        try:
            self.feedback.show_pool(name, self.controller.pool_counts())
        except ValueError as e:  # a model file whose name cannot name a pool folder
            self.feedback.show_pool(name, None, str(e))

    # --- start / stop ------------------------------------------------------------------------------
    def start(self) -> None:
        if self.is_running():
            return
        name = self.source_panel.model_name()
        if not name:
            self.show_message("Choose a model first (train one on the Train page if the list is empty).", "warning")
            return
        try:
            source = self.controller.open_source(
                self.source_panel.source_text(), **self.source_panel.source_options(), fps=self.line_panel.rate(),
                on_unreadable=lambda p, r: self._inbox.warn(f"skipped unreadable image {p.name}: {r}"),
            )
            roi = parse_roi(self.live_view.roi_edit.text().strip() or None)
            self.controller.open_store()
        except Exception as e:  # noqa: BLE001 — bad source text, bad ROI, unwritable database: a message
            self.show_message(str(e), "error")
            return
        self.source_panel.remember()
        self.source_panel.set_running(False, starting=True)
        self.live_view.state_label.setText("loading model…")
        self.load_job = run_job(f"Loading {name} for live inspection", lambda report, cancel: self.controller.load(name),
                                parent=self)
        self.load_job.succeeded.connect(lambda predictor: self._begin(source, predictor, roi, name))
        self.load_job.failed.connect(lambda m: (self.show_message(f"Could not load {name}: {m}", "error"), self._set_running(False)))

    def _begin(self, source, predictor, roi, name: str) -> None:
        inbox, lp = self._inbox, self.line_panel
        inbox.reset()
        try:
            self.controller.start(source, predictor, roi, follow=None if _is_export(name) else name,  # promotions made elsewhere
                                  follow_interval_s=1.0,
                                  pause_on_ng=self.live_view.pause_on_ng.isChecked(), keep_recent_ng=KEEP_NG,
                                  on_result=inbox.on_result, on_state=inbox.on_state, on_error=inbox.on_error,
                                  sinks=lp.sinks(), station=lp.station_name(), triggered=lp.triggered())
        except Exception as e:  # noqa: BLE001
            self.show_message(f"Could not start live inspection: {e}", "error")
            self._set_running(False)
            return
        self.shown = None
        self.live_view.new_run()
        self.trend.new_run(predictor.threshold)
        self._timer.start()
        self._set_running(True)
        self.started.emit()

    def stop(self) -> None:
        if self.load_job is not None and self.load_job.running:
            self.load_job.succeeded.disconnect()
        # a moment for the line outputs, not more: a sink that is down must not freeze Stop (the outbox keeps the rest)
        self.controller.stop(timeout=3.0, drain_s=STOP_DRAIN_S)
        if self._timer.isActive():
            self._tick()  # the last results, then the run ends (``stopped``)
        else:
            self._set_running(False)
            self.stopped.emit()

    def shutdown(self) -> None:
        """Stop everything (the window is closing)."""
        self.stop()
        if self.retrain_job is not None:
            self.retrain_job.cancel()
        self.controller.close(drain_s=0.0)

    def is_running(self) -> bool:
        return self.controller.running

    def retrain_busy(self) -> bool:
        return self.retrain_job is not None and self.retrain_job.running

    def _set_running(self, running: bool) -> None:
        self.source_panel.set_running(running)
        self.line_panel.set_running(running)
        if not running and self.controller.live is None:
            self.live_view.state_label.setText("stopped")
        self._update_buttons()

    def _update_buttons(self) -> None:
        shown = self.shown
        self.live_view.update_buttons(self.controller.paused)
        self.feedback.update_buttons(can_mark=shown is not None and shown.record_id is not None,
                                     has_model=bool(self.controller.model_name), busy=self.retrain_busy())

    # --- the UI timer: drain the run's results -----------------------------------------------------
    def _tick(self) -> None:
        live = self.controller.live
        if live is None:
            return
        drained = self._inbox.drain()
        view = self.live_view
        view.add_ng(drained.ng)
        if drained.states:
            view.show_state(drained.states[-1])
        for level, text in drained.errors[-3:]:
            self.show_message(text, level)
        if drained.latest is not None and not view.reviewing:
            self.display(drained.latest)
        self.trend.add(drained.points)
        if drained.points and self.shown is not None:
            self.trend.set_threshold(self.shown.threshold)
        stats = live.stats()
        self.counters.show_stats(stats)
        view.show_store_alarm(stats)
        for level, text in self.line_panel.refresh(self.controller.line_status):
            self.show_message(text, level)  # a line output down: once per outage, and when it is back
        if live.paused and not view.reviewing and self.shown is not None:
            view.show_paused()
        if live.finished.is_set() and self._timer.isActive():
            self._timer.stop()
            self._set_running(False)
            if live.fatal is not None:  # e.g. the ROI does not fit in the frames: stopped, say why
                self.show_message(f"Live inspection stopped: {live.fatal.message}", "error")
            self.stopped.emit()
        self._update_buttons()

    def display(self, result) -> None:
        self.shown = result
        self.live_view.show_result(result)
        self.resultShown.emit(result)
        self._update_buttons()

    def _opacity_changed(self, opacity: float) -> None:
        if self.settings is not None:
            self.settings.opacity = opacity

    # --- ROI ---------------------------------------------------------------------------------------
    def set_roi(self, roi) -> None:
        """ValueError (and nothing changed) when the run has seen frames and it does not fit in them."""
        self.controller.set_roi(roi)
        self.live_view.show_roi(roi)

    def set_roi_text(self, text: str) -> None:
        """A typed ROI: applied, or a message saying what is wrong with it."""
        try:
            self.set_roi(parse_roi(text.strip() or None))
        except ValueError as e:
            self.show_message(str(e), "warning")

    def _apply_roi(self, roi) -> None:
        try:
            self.set_roi(roi)
        except ValueError as e:
            self.show_message(str(e), "warning")

    # --- station files ---------------------------------------------------------------------------------
    def open_station(self, path: str | Path) -> bool:
        """Source, rate, ROI, model and line outputs from a station file; a file bad in any part
        changes nothing (one line says why)."""
        if self.is_running():
            self.show_message("Stop live inspection before opening a station file.", "warning")
            return False
        try:
            station, roi = read_station(path)
        except StationError as e:
            self.show_message(str(e), "error")
            return False
        self.source_panel.source.setCurrentText(station.source)
        self.live_view.show_roi(roi)  # not running: Start reads it (a stopped run's frames must not veto it)
        self.line_panel.set_station(station)
        if _is_export(station.model):  # listed beside the registry's models, and kept there
            self.station_exports.setdefault(station.model, f"{Path(station.model).name} (exported, from {Path(path).name})")
            if self.source_panel.model.findData(station.model) < 0:
                self.source_panel.model.addItem(self.station_exports[station.model], station.model)
        note = choose_model(self.source_panel.model, station.model)
        self.show_message(f"Station {station.name} opened from {Path(path).name}.{note}", "warning" if note else "info")
        return True

    def save_station(self, path: str | Path) -> bool:
        """The page's source, rate, ROI, model and line outputs as a station file (written whole)."""
        try:
            roi = parse_roi(self.live_view.roi_edit.text().strip() or None)
            station = self.line_panel.station(self.source_panel.source_text(), self.source_panel.model_name(), roi)
            station.save(path)
        except (ValueError, OSError) as e:
            self.show_message(f"Could not save the station file {path}: {getattr(e, 'strerror', None) or e}", "error")
            return False
        self.show_message(f"Station {station.name} saved to {path}.", "info")
        return True

    # --- review ------------------------------------------------------------------------------------
    def back_to_live(self) -> None:
        self.live_view.end_review()
        if self.controller.paused:
            self.resume()
        elif self.controller.live is not None and self.controller.live.last_result is not None:
            self.display(self.controller.live.last_result)

    def escape(self) -> bool:
        """Esc on this page (the window's one Esc, so no two shortcuts are ambiguous): leave the
        review of a frame or the pause on NG, else cancel the retraining; False when none was under way."""
        if self.live_view.reviewing or self.controller.paused:
            self.back_to_live()
            return True
        if self.retrain_busy():
            self.retrain_job.cancel()
            return True
        return False

    def resume(self) -> None:
        self.controller.resume()
        self.live_view.end_review()
        self._update_buttons()

    def _pause_on_ng_toggled(self, on: bool) -> None:
        paused = self.controller.paused
        self.controller.set_pause_on_ng(on)
        if paused and not on:
            self.resume()

    # --- feedback ----------------------------------------------------------------------------------
    def give_feedback(self, feedback: str) -> Path | None:
        r = self.shown
        if r is None or r.record_id is None or self.controller.store is None:
            return None
        try:
            path = self.controller.give_feedback(r, feedback)
        except Exception as e:  # noqa: BLE001
            self.show_message(f"Could not record the feedback: {e}", "error")
            return None
        self.show_message(f"Frame {r.frame.frame_id} marked {FEEDBACK_WORDS[feedback]}.", "info")
        self.update_pool()
        if self.controller.paused and self.live_view.pause_on_ng.isChecked():
            self.resume()  # the operator has dealt with the part that stopped the line
        return path

    # --- retraining and versions -------------------------------------------------------------------
    def retrain(self, data=None, epochs: int | None = None) -> Job | None:
        """Fine-tune a new version in the background (``data``/``epochs`` for tests and experts)."""
        name = self.controller.model_name
        if not name or self.retrain_busy():
            return None
        self.feedback.retraining(name)
        job = run_job(f"Retraining {name}", lambda report, cancel: self.controller.retrain(
            data=data, epochs=epochs, on_event=report, cancel=cancel, name=name), parent=self)
        status = self.feedback.retrain_status
        job.progress.connect(self.feedback.show_progress)
        job.succeeded.connect(self._retrain_done)
        job.failed.connect(lambda m: (status.setText(""), self.show_message(f"Retraining failed: {m}", "error")))
        job.cancelled.connect(lambda: status.setText("Retraining cancelled; nothing was added."))
        job.finished.connect(self._update_buttons)
        self.retrain_job = job
        self._update_buttons()
        return job

    def _retrain_done(self, result) -> None:
        new = result.entry
        self.feedback.retrain_status.setText(f"{ref_text(new.name, new.version)} is ready (not in use yet).")
        self._fill_versions()
        self._registry_changed()
        self.retrainFinished.emit(result)
        if not self.confirm_dialogs:
            return
        choice = ComparisonDialog(result, self).exec()
        if choice == ComparisonDialog.PROMOTE:
            self.promote(new.version, new.name)
        elif choice == ComparisonDialog.DISCARD:
            self.discard(new.version, new.name)

    def promote(self, version: int | None, name: str | None = None) -> None:
        """Promote or roll back: put ``version`` of ``name`` (default: the chosen model) in use;
        a run on it is hot-swapped."""
        name = name or self.controller.model_name
        if not name or version is None:
            return
        try:
            self.controller.promote(int(version), name)
        except Exception as e:  # noqa: BLE001
            self.show_message(f"Could not switch to {ref_text(name, int(version))}: {e}", "error")
            return
        self._fill_versions()
        self.source_panel.set_version_in_use(name, int(version))
        ref = ref_text(name, int(version))
        self.feedback.retrain_status.setText(f"{ref} is in use.")
        self._registry_changed()
        self.show_message(f"{ref} is now in use" + (" (swapped without stopping)." if self.is_running() else "."), "info")
        self.modelSwapped.emit(ref)

    def discard(self, version: int, name: str | None = None) -> None:
        try:
            self.controller.discard(int(version), name)
        except Exception as e:  # noqa: BLE001
            self.show_message(f"Could not discard v{version}: {e}", "error")
            return
        self._fill_versions()
        self.feedback.retrain_status.setText(f"v{version} discarded.")
        self._registry_changed()


def _is_export(name: str) -> bool:
    """Whether the model chosen is an exported model's folder (not a registry name)."""
    return bool(name) and is_exported(name)
