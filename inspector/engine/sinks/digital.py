"""Digital outputs: the verdict as signal lines for an IO card, a PLC's digital inputs or GPIO
(a reject gate wired to NG). ``DigitalIO`` is the interface a card's driver implements;
``SimulatedIO`` is the one that ships (and the tests use): lines in memory with a history.

    digital://sim?pulse_ms=50

Lines: ``ready`` (high while waiting for a part), ``ok`` and ``ng`` (a pulse of ``pulse_ms`` per
verdict; ``ng`` for NG and ERROR: what cannot be judged is rejected), ``error`` (high while the
last verdict was ERROR). A verdict counts as delivered once its pulse has been written and read
back.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from inspector.engine.decision import OK
from inspector.engine.sinks.base import Sink, SinkError
from inspector.engine.sinks.message import ERROR

LINES = ("ready", "ok", "ng", "error")


class DigitalIO(Protocol):
    """What a driver for real outputs provides."""

    def write(self, line: str, value: bool) -> None: ...

    def read(self, line: str) -> bool: ...


class SimulatedIO:
    """Output lines in memory; ``history`` keeps every change (time, line, value)."""

    def __init__(self) -> None:
        self._lines = dict.fromkeys(LINES, False)
        self.history: list[tuple[float, str, bool]] = []
        self._lock = threading.Lock()

    def write(self, line: str, value: bool) -> None:
        with self._lock:
            if self._lines[line] != value:
                self._lines[line] = value
                self.history.append((time.time(), line, value))

    def read(self, line: str) -> bool:
        with self._lock:
            return self._lines[line]

    def pulses(self, line: str) -> int:
        """How many times ``line`` went high."""
        with self._lock:
            return sum(1 for _, name, value in self.history if name == line and value)


class DigitalOutputSink(Sink):
    scheme = "digital"

    def __init__(self, url: str, station: str, io: DigitalIO | None = None) -> None:
        super().__init__(url, station)
        if self.host != "sim":
            raise ValueError(f"sink {url!r}: the digital outputs available are 'digital://sim' (a driver implements DigitalIO)")
        try:
            self.pulse_s = float(self.option("pulse_ms", "50")) / 1000
        except ValueError:
            raise ValueError(f"sink {url!r}: pulse_ms must be a number of milliseconds") from None
        if not 0.001 <= self.pulse_s <= 10:
            raise ValueError(f"sink {url!r}: pulse_ms must be from 1 to 10000")
        self.io: DigitalIO = io or SimulatedIO()

    def start(self) -> None:
        self.io.write("ready", True)

    def send(self, message: dict[str, Any], timeout: float) -> None:
        decision = message["decision"]
        line = "ok" if decision == OK else "ng"
        self.io.write("ready", False)
        self.io.write("error", decision == ERROR)
        self.io.write(line, True)
        if not self.io.read(line):
            raise SinkError(f"digital output {line} did not go high")
        time.sleep(self.pulse_s)
        self.io.write(line, False)
        self.io.write("ready", True)

    def close(self) -> None:
        self.io.write("ready", False)
