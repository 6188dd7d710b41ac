"""What the live run's threads hand to the UI, bounded whatever the UI does.

The run reports from its capture and inference threads; a camera at 60 fps must not flood the
event loop. The callbacks here only append to small buffers under a lock; the page's timer
drains them ~15 times a second and shows the latest result, the new NG results, the trend
points, the source's state and the problems worth a message.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, NamedTuple

from inspector.engine.live_controller import ErrorThrottle
from inspector.engine.decision import NG

TREND_POINTS = 300  # recent scores in the trend plot
KEEP_NG = 30  # recent NG results to step through


class Drained(NamedTuple):
    latest: Any  # the newest LiveResult since the last drain, or None
    ng: list  # NG results since the last drain
    points: list  # (seq, score, is NG) since the last drain
    states: list  # source StateChanges (the last 50)
    errors: list  # (level, text) of the problems to show


class Inbox:
    """The buffers between the run's threads and the UI timer; ``on_*`` are the run's callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest = None
        self._ng: collections.deque = collections.deque(maxlen=KEEP_NG)
        self._points: collections.deque = collections.deque(maxlen=TREND_POINTS)
        self._states: list = []
        self._errors: collections.deque = collections.deque(maxlen=20)
        self._throttle = ErrorThrottle()

    def reset(self) -> None:
        """A new run: nothing left from the last one, and every kind of problem shown afresh."""
        self.drain()
        self._throttle = ErrorThrottle()

    def on_result(self, result) -> None:
        with self._lock:
            self._latest = result
            self._points.append((result.seq, result.score, result.decision == NG))
            if result.decision == NG:
                self._ng.append(result)

    def on_state(self, change) -> None:
        with self._lock:
            self._states.append(change)

    def on_error(self, error) -> None:
        """Fatal problems always; others once per kind per interval (a full disk fails every frame;
        the counters and the storage alarm count them all)."""
        if not error.fatal and self._throttle.admit(error.kind) is None:
            return
        self.warn(error.message, "error" if error.fatal or error.kind.startswith("store") else "warning")

    def warn(self, text: str, level: str = "warning") -> None:
        with self._lock:
            self._errors.append((level, text))

    def drain(self) -> Drained:
        with self._lock:
            drained = Drained(self._latest, list(self._ng), list(self._points), self._states[-50:], list(self._errors))
            self._latest = None
            self._ng.clear()
            self._points.clear()
            self._errors.clear()
            self._states = []
        return drained
