"""Background jobs for long work (training, evaluation, scoring, loading), never on the UI thread.

A :class:`Job` runs a plain core function in a superqt thread worker. The function gets two
keyword arguments: ``report`` (call it with any event, from the worker thread; the job
re-emits it as ``progress`` on the UI thread) and ``cancel`` (the core's ``CancelToken``, which
the core checks every batch). When the function returns, exactly one of ``succeeded(result)``,
``cancelled()`` or ``failed(message)`` is emitted on the UI thread, then ``finished()``.

Threads only (no processes): the core releases the GIL in torch and OpenCV.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Qt, Signal, Slot
from superqt.utils import create_worker

from inspector.engine.events import CancelToken, Cancelled
from inspector.gui.gc_guard import collect_garbage_on_ui_thread

log = logging.getLogger(__name__)

_active: set["Job"] = set()


def _thread_pool() -> QThreadPool:
    pool = QThreadPool.globalInstance()
    # long jobs (a training, a folder check) must not starve short ones (loading a model):
    # the default of one thread per core is 2 on a small PC
    if pool.maxThreadCount() < 8:
        pool.setMaxThreadCount(8)
    return pool


class Job(QObject):
    progress = Signal(object)  # any event the work reports (TrainProgress, Progress, ...)
    succeeded = Signal(object)  # the work's return value
    failed = Signal(str)  # a readable message (the traceback is in the log)
    cancelled = Signal()
    finished = Signal()  # always, after one of the three above

    _posted = Signal(object)  # from the worker thread; re-emitted as progress on the UI thread

    def __init__(self, title: str, func: Callable[..., Any], *args: Any, parent: QObject | None = None, **kwargs: Any) -> None:
        super().__init__(parent)
        self.title = title
        self.token = CancelToken()
        self.running = False
        self.quiet = False  # True: small, frequent work the status bar does not list
        self.outcome = ""  # succeeded | cancelled | failed, once finished
        self._call = partial(func, *args, **kwargs)
        self._posted.connect(self.progress, Qt.ConnectionType.QueuedConnection)
        self._worker = None

    def start(self) -> "Job":
        _thread_pool()
        collect_garbage_on_ui_thread()  # a worker must never be the thread that frees a widget
        self._worker = create_worker(self._run, _start_thread=False)
        self._worker.returned.connect(self._on_returned, Qt.ConnectionType.QueuedConnection)
        self.running = True
        _active.add(self)
        log.info("job started: %s", self.title)
        self._worker.start()
        return self

    def cancel(self) -> None:
        if self.running:
            log.info("job cancel requested: %s", self.title)
            self.token.cancel()

    # --- worker thread ------------------------------------------------------------------------
    def _run(self) -> tuple[str, Any]:
        try:
            return "succeeded", self._call(report=self._posted.emit, cancel=self.token)
        except Cancelled:
            return "cancelled", None
        except Exception as e:  # noqa: BLE001 — every failure becomes a message, never a crash
            log.error("job failed: %s\n%s", self.title, traceback.format_exc())
            return "failed", describe_error(e)

    # --- UI thread ----------------------------------------------------------------------------
    @Slot(object)
    def _on_returned(self, outcome: tuple[str, Any]) -> None:
        kind, value = outcome
        self.running = False
        self.outcome = kind
        _active.discard(self)
        log.info("job %s: %s", kind, self.title)
        try:
            if kind == "succeeded":
                self.succeeded.emit(value)
            elif kind == "cancelled":
                self.cancelled.emit()
            else:
                self.failed.emit(value)
        finally:
            self.finished.emit()


def run_job(title: str, func: Callable[..., Any], *args: Any, parent: QObject | None = None, **kwargs: Any) -> Job:
    """Create and start a job (connect to its signals right away: results arrive through the event loop)."""
    return Job(title, func, *args, parent=parent, **kwargs).start()


def active_jobs() -> list[Job]:
    return sorted(_active, key=lambda j: j.title)


def cancel_all(wait_ms: int = 15000) -> bool:
    """Cancel every running job and wait for the threads; False when some did not stop in time."""
    for job in list(_active):
        job.cancel()
    return _thread_pool().waitForDone(wait_ms)


def describe_error(e: BaseException) -> str:
    """One line a user can act on."""
    message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    if isinstance(e, MemoryError):
        return "out of memory: try a smaller image size or batch size"
    return message or type(e).__name__
