"""Python's cycle collector runs on the UI thread only.

CPython collects cycles on whichever thread happens to allocate when a threshold is crossed.
When that is a training thread and the garbage holds a Qt widget (a closed dialog or page
caught in a reference cycle), the widget is destroyed off the UI thread. Qt forbids that, and
with PySide6 it deadlocks: the worker waits for the GIL inside ``~QObject`` while holding a Qt
mutex that the UI thread, holding the GIL, waits for. So automatic collection is switched off
and a timer on the UI thread collects instead, generation by generation at Python's own
thresholds (what pyqtgraph's ``GarbageCollector`` does).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer

_NAME = "inspector-ui-thread-gc"
INTERVAL_MS = 500


class _Collector(QObject):
    def __init__(self, app: QCoreApplication) -> None:
        super().__init__(app)
        self.setObjectName(_NAME)
        self.thresholds = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.collect)
        self.timer.start(INTERVAL_MS)

    def collect(self) -> None:
        """Collect the generations whose allocation count passed its threshold, as CPython would."""
        counts = gc.get_count()
        generation = -1
        for g in range(3):
            if counts[g] <= self.thresholds[g]:
                break
            generation = g
        if generation >= 0:
            gc.collect(generation)


def collect_garbage_on_ui_thread() -> None:
    """Switch automatic collection off and collect from the UI thread's event loop instead (idempotent)."""
    app = QCoreApplication.instance()
    if app is None:
        return
    if app.findChild(QObject, _NAME) is None:
        _Collector(app)
    gc.disable()
