"""Delivery: every verdict to every sink, in order, until acknowledged, with nothing lost.

The outbox is the results store itself: a verdict is a committed result row (so it is in the
outbox in the same transaction as its row), and each sink keeps the id of the newest result it
had acknowledged (``ResultsStore.open_delivery`` / ``acknowledge``). One thread per sink sends
the results after that id, oldest first, each until its receiver acknowledges it: a broker
restart, a receiver down for an hour or inspector killed and started again only delays verdicts.
A resent verdict has the same ``id``. A verdict the store could not keep is sent from memory
(``unstored``), NG, before the next stored one.

A sink that is down never stalls inspection (the live loop only commits and notifies); it shows
as an alarm: ``status()`` gives each sink's state, backlog and latency (capture to acknowledgement).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspector.data.trigger import TriggerGate
from inspector.engine.results_store import ResultsStore, StoreError
from inspector.engine.sinks.base import Sink, SinkError
from inspector.engine.sinks.message import verdict

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 5.0  # one attempt waits this long for its acknowledgement
RETRY_FIRST_S, RETRY_MAX_S = 0.2, 10.0  # back-off between attempts, doubling
BATCH = 64  # results read from the store at once
UNSTORED_MAX = 1000  # verdicts kept in memory when the store fails (oldest dropped beyond, and counted)


@dataclass
class SinkStatus:
    """What the Live page's line panel and ``--stats-every`` show of one sink."""

    key: str
    connected: bool = False  # the last attempt was acknowledged
    delivered: int = 0
    backlog: int = 0  # stored verdicts not acknowledged yet
    unstored_waiting: int = 0
    unstored_dropped: int = 0
    last_error: str = ""
    down_since: float | None = None  # time.time() of the first failure in a row (None: up)
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0

    @property
    def alarm(self) -> str:
        """'' when all is well; else one line for the operator."""
        if self.down_since is None:
            return ""
        return f"{self.key} down for {time.time() - self.down_since:.0f} s, {self.backlog} verdicts waiting: {self.last_error}"


class Delivery:
    """One sink's thread over the store's outbox."""

    def __init__(self, sink: Sink, store: ResultsStore, station: str, send_timeout_s: float = SEND_TIMEOUT_S) -> None:
        self.sink = sink
        self.store = store
        self.station = station
        self.send_timeout_s = send_timeout_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._unstored: collections.deque[dict[str, Any]] = collections.deque()
        self._latencies: collections.deque[float] = collections.deque(maxlen=500)
        self._status = SinkStatus(sink.key)
        self._thread: threading.Thread | None = None
        self._retry_s = RETRY_FIRST_S
        self.cursor = store.open_delivery(sink.key)  # before any frame of the run is stored
        self.store_id = store.store_id

    def start(self) -> None:
        self.sink.start()
        self._thread = threading.Thread(target=self._run, name=f"sink {self.sink.key}", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A result was committed: send it soon."""
        self._wake.set()

    def unstored(self, message: dict[str, Any]) -> None:
        with self._lock:
            if len(self._unstored) >= UNSTORED_MAX:
                self._unstored.popleft()
                self._status.unstored_dropped += 1
            self._unstored.append(message)
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the attempt in progress (what is not acknowledged stays in the outbox)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.sink.close()

    def drain(self, timeout: float) -> bool:
        """Wait until everything stored is acknowledged (True), or ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if self.status().backlog == 0 and not self._unstored:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def status(self) -> SinkStatus:
        try:
            backlog = self.store.backlog(self.cursor)
        except StoreError:
            backlog = self._status.backlog
        with self._lock:
            s = self._status
            s.backlog, s.unstored_waiting = backlog, len(self._unstored)
            if self._latencies:
                s.latency_p50_ms, s.latency_p95_ms = (float(v) for v in np.percentile(list(self._latencies), [50, 95]))
            return SinkStatus(**vars(s))

    # --- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                message = self._unstored[0] if self._unstored else None
            if message is not None:
                if self._send(message, None):
                    with self._lock:
                        if self._unstored and self._unstored[0] is message:  # not dropped meanwhile for room
                            self._unstored.popleft()
                continue
            try:
                rows = self.store.pending(self.cursor, BATCH)
            except StoreError as e:
                self._failed(f"cannot read the outbox: {e}")
                continue
            if not rows:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            for row in rows:
                if not self._send(verdict(row, self.station, self.store_id), row):
                    break  # in order: the same row again after the back-off
                if self._unstored or self._stop.is_set():
                    break

    def _send(self, message: dict[str, Any], row) -> bool:
        try:
            self.sink.send(message, self.send_timeout_s)
        except SinkError as e:
            self._failed(str(e))
            return False
        except Exception as e:  # noqa: BLE001 — a protocol library's own error: the same as a refusal
            self._failed(f"{type(e).__name__}: {e}")
            return False
        if row is not None:
            try:
                self.store.acknowledge(self.sink.key, row.id)
            except StoreError as e:  # sent, but not recorded: it will be sent again, same id
                self._failed(str(e))
                return False
            self.cursor = row.id
        with self._lock:
            s = self._status
            s.connected, s.down_since, s.last_error = True, None, ""
            s.delivered += 1
            if row is not None:
                self._latencies.append(max(0.0, (time.time() - row.time) * 1000))
            self._retry_s = RETRY_FIRST_S
        return True

    def _failed(self, why: str) -> None:
        with self._lock:
            s = self._status
            if s.down_since is None:
                s.down_since = time.time()
                log.warning("line output %s: %s", self.sink.key, why)
            s.connected, s.last_error = False, why
            wait, self._retry_s = self._retry_s, min(self._retry_s * 2, RETRY_MAX_S)
        self._stop.wait(wait)


@dataclass
class LineOutputs:
    """Every sink of a run. The live loop calls ``stored`` after each commit and ``unstored``
    for a verdict the store could not keep; the rest happens in the sinks' threads."""

    deliveries: list[Delivery] = field(default_factory=list)
    station: str = ""
    gate: TriggerGate = field(default_factory=TriggerGate)  # triggers from every sink that takes them

    def __post_init__(self) -> None:
        for d in self.deliveries:
            d.sink.on_trigger = self.gate.pull

    @classmethod
    def open(cls, urls: list[str], store: ResultsStore, station: str) -> LineOutputs:
        """Sinks for ``urls`` (``engine.sinks.open_sink``), each at its place in the outbox."""
        from inspector.engine.sinks import open_sink

        sinks = [open_sink(url, station) for url in urls]  # every address checked before any is started
        keys = [s.key for s in sinks]
        if len(set(keys)) != len(keys):
            raise ValueError("the same sink is given twice: " + ", ".join(sorted({k for k in keys if keys.count(k) > 1})))
        return cls([Delivery(sink, store, station) for sink in sinks], station)

    def start(self) -> None:
        for d in self.deliveries:
            d.start()

    def stored(self) -> None:
        for d in self.deliveries:
            d.notify()

    def unstored(self, message: dict[str, Any]) -> None:
        for d in self.deliveries:
            d.unstored(message)

    def set_state(self, state: str) -> None:
        for d in self.deliveries:
            try:
                d.sink.set_state(state)
            except Exception as e:  # noqa: BLE001 — a state message is best effort; verdicts are not
                log.debug("state %s to %s failed: %s", state, d.sink.key, e)

    def status(self) -> list[SinkStatus]:
        return [d.status() for d in self.deliveries]

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds in all for every sink to catch up; whether they did."""
        deadline = time.monotonic() + timeout
        return all([d.drain(max(0.0, deadline - time.monotonic())) for d in self.deliveries])

    def stop(self, drain_s: float = 2.0) -> None:
        """Give the sinks ``drain_s`` seconds to catch up, then stop (the rest waits in the outbox)."""
        self.drain(drain_s)
        for d in self.deliveries:
            d.stop()
