"""Triggered acquisition: the line says when a part is in place (a PLC's trigger through a line
output, ``engine.sinks``) and exactly one frame is inspected per trigger.

``TriggerGate`` counts triggers (thread-safe: sinks pull from their own threads). A
``TriggeredSource`` wraps any frame source: a camera that takes pictures on command (a GigE
camera in software-trigger mode: ``fires``) is told to take one per trigger; from a camera or a
simulated line that run freely it passes on the first frame captured after each trigger and
lets the others go; from a folder or a video file it reads the next frame when a trigger comes. A trigger that arrives while
another is waiting is kept: none is lost, each gets its own frame.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from inspector.data.sources import Frame, FrameSource, StateCallback

POLL_S = 0.05  # how often a wait for a trigger looks at the stop request
REFIRE_S = 2.0  # a camera told to take a picture that sent none by then is told again


class TriggerGate:
    def __init__(self) -> None:
        self._pending = 0
        self._pulled = 0
        self._cond = threading.Condition()

    def pull(self) -> None:
        """The line asks for one part to be inspected."""
        with self._cond:
            self._pending += 1
            self._pulled += 1
            self._cond.notify_all()

    @property
    def pulled(self) -> int:
        """Triggers received so far."""
        return self._pulled

    def take(self, stop: threading.Event, timeout: float | None = None) -> bool:
        """Wait for a trigger (``timeout`` seconds at most; 0: do not wait) and use it up."""
        with self._cond:
            waited = 0.0
            while self._pending == 0:
                if stop.is_set() or (timeout is not None and waited >= timeout):
                    return False
                self._cond.wait(POLL_S)
                waited += POLL_S
            self._pending -= 1
            return True


class TriggeredSource:
    """``source``, one frame per trigger of ``gate`` (the same interface the live loop reads)."""

    def __init__(self, source: FrameSource, gate: TriggerGate) -> None:
        self.source = source
        self.gate = gate
        self.kind = source.kind
        self.drops_frames = False  # every triggered frame is inspected: the inspection waits for none
        self.description = f"{source.description}, on trigger"

    @property
    def state(self):
        return self.source.state

    @property
    def message(self) -> str:
        return self.source.message

    def frames(self, stop: threading.Event, on_state: StateCallback | None = None) -> Iterator[Frame]:
        if getattr(self.source, "fires", False):  # the camera itself waits for the trigger
            arrived = threading.Event()
            firing = threading.Thread(target=self._fire_on_triggers, args=(stop, arrived), name="trigger", daemon=True)
            firing.start()
            try:
                for frame in self.source.frames(stop, on_state=on_state):
                    arrived.set()
                    yield frame
            finally:
                firing.join(1.0)
            return
        if self.source.drops_frames:  # free-running: the first frame after each trigger
            for frame in self.source.frames(stop, on_state=on_state):
                if self.gate.take(stop, timeout=0):
                    yield frame
            return
        frames = self.source.frames(stop, on_state=on_state)
        while not stop.is_set():
            if self.gate.take(stop, timeout=None):
                frame = next(frames, None)
                if frame is None:
                    return
                yield frame

    def _fire_on_triggers(self, stop: threading.Event, arrived: threading.Event) -> None:
        """One picture per trigger, the next only once the last one has arrived (a camera ignores
        a trigger while it is still exposing or sending); a picture that does not come within
        ``REFIRE_S`` is asked for again, and a trigger that comes while the camera is not open
        waits for it."""
        while not stop.is_set():
            if not self.gate.take(stop, timeout=None):
                return
            arrived.clear()
            while not stop.is_set():
                if self.source.fire() and arrived.wait(REFIRE_S):
                    break
                stop.wait(POLL_S)
