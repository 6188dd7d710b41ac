"""Modbus TCP (pymodbus): each verdict as coils and holding registers a PLC can read without any
JSON, delivered when the PLC writes the ack coil (or, with ``?ack=off``, when the values read back).

    modbus://HOST[:502][?unit=1&ack=on&ack_timeout=3&words=big&coils=0&registers=0]
        inspector is the Modbus server (it listens on HOST:PORT); the PLC polls it.
    modbus+client://HOST[:502][?unit=1&coils=0&registers=0&ack=off&poll=0.1]
        the PLC is the Modbus server; inspector writes into its memory at the given offsets.

The map (``COILS``, ``REGISTERS``) and the handshake are in docs/line-outputs/modbus.md. A PLC
that polls tells one verdict from the next by the sequence register, since two verdicts can be
equal in every other value; the same verdict presented again (a retry) keeps its number.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

from pymodbus.client import ModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from inspector.engine.sinks.base import Sink, SinkError
from inspector.engine.sinks.message import ERROR, OK, STATION_STATES
from inspector.text import first_line

log = logging.getLogger(__name__)

# coils, as offsets from ?coils= (also readable as discrete inputs at the same addresses)
COILS = {"ready": 0, "busy": 1, "ok": 2, "ng": 3, "result_valid": 4, "ack": 5, "trigger": 6, "error": 7}
N_COILS = len(COILS)
C_READY, C_BUSY, C_OK, C_NG, C_VALID, C_ACK, C_TRIGGER, C_ERROR = range(N_COILS)
PLC_WRITES = (C_ACK, C_TRIGGER)  # the only coils the PLC may write (server mode)
INSPECTOR_WRITES = range(C_ACK)  # ready .. result_valid: one request in client mode (error apart, before it)

# holding registers, as offsets from ?registers= (also readable as input registers)
REGISTERS = {"score": 0, "threshold": 2, "frame": 4, "inspected": 6, "ng_count": 8, "errors": 10,
             "version": 12, "state": 13, "sequence": 14}
N_REGISTERS = 15
FLOATS = ("score", "threshold")  # float32 over two registers, NaN for null
UINT32S = ("frame", "inspected", "ng_count", "errors")  # unsigned 32 bit over two registers
VERDICT_REGISTERS = range(REGISTERS["state"])  # what read-back compares, with the sequence (not the live state)

ACK_TIMEOUT_S = 3.0  # the PLC's cycle plus its ack logic: far below a second on a real line
IO_TIMEOUT_S = 1.0  # one Modbus request (client mode) or one read-back
POLL_S = 0.1  # client mode: how often the PLC's trigger and ack coils are read
ACK_POLL_S = 0.02  # client mode: while a verdict waits for its ack
RECONNECT_S = 1.0  # client mode: the poller's pause after a failed connection (pymodbus logs each)
COUNTED_KEPT = 1024  # ids already counted, so a verdict presented again is not counted twice

_SERVER_OPTIONS = ("unit", "ack", "ack_timeout", "words", "coils", "registers")
_CLIENT_OPTIONS = _SERVER_OPTIONS + ("poll",)


# --- values <-> registers ---------------------------------------------------------------------------
def _swap(words: list[int], little: bool) -> list[int]:
    return words[::-1] if little else words


def float32_words(value: float | None, little: bool = False) -> list[int]:
    """Two registers of an IEEE 754 float32 (NaN for null; a value beyond float32 is ±inf)."""
    x = math.nan if value is None else float(value)
    try:
        raw = struct.pack(">f", x)
    except OverflowError:
        raw = struct.pack(">f", math.copysign(math.inf, x))
    return _swap(list(struct.unpack(">HH", raw)), little)


def uint32_words(value: int, little: bool = False) -> list[int]:
    """Two registers of an unsigned 32-bit number (modulo 2**32)."""
    v = int(value) & 0xFFFFFFFF
    return _swap([v >> 16, v & 0xFFFF], little)


def decode(coils: list[bool], registers: list[int], words: str = "big") -> dict[str, Any]:
    """The map read back into names: what a PLC program (or a test) makes of the raw values."""
    little = words == "little"
    out: dict[str, Any] = {name: bool(coils[i]) for name, i in COILS.items()}
    for name in FLOATS:
        i = REGISTERS[name]
        value = struct.unpack(">f", struct.pack(">HH", *_swap(list(registers[i:i + 2]), little)))[0]
        out[name] = None if math.isnan(value) else value
    for name in UINT32S:
        i = REGISTERS[name]
        hi, lo = _swap(list(registers[i:i + 2]), little)
        out[name] = (hi << 16) | lo
    out["version"] = registers[REGISTERS["version"]]
    out["state"] = STATION_STATES[registers[REGISTERS["state"]]] if registers[REGISTERS["state"]] < len(STATION_STATES) else "?"
    out["sequence"] = registers[REGISTERS["sequence"]]
    return out


def _pack_bits(bits: list[bool]) -> list[int]:
    """Bits into 16-bit words, bit 0 first (pymodbus's layout of a coil block)."""
    words = [0] * ((len(bits) + 15) // 16)
    for i, bit in enumerate(bits):
        if bit:
            words[i // 16] |= 1 << (i % 16)
    return words


# --- options -------------------------------------------------------------------------------------------
def _number(sink: Sink, name: str, default: str, kind: type, low: float, high: float) -> Any:
    text = sink.option(name, default)
    try:
        value = kind(text)
    except (TypeError, ValueError):
        value = None
    if value is None or not (low <= value <= high) or (kind is float and not math.isfinite(value)):
        raise ValueError(f"sink {sink.url!r}: ?{name}= must be a {'whole ' if kind is int else ''}number from {low:g} to {high:g}, not {text!r}")
    return value


def _choice(sink: Sink, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (sink.option(name, default) or "").lower()
    if value not in choices:
        raise ValueError(f"sink {sink.url!r}: ?{name}= must be {' or '.join(choices)}, not {sink.option(name)!r}")
    return value


class _Options:
    """The URL's options, checked once when the sink is opened (a typo is a one-line ValueError)."""

    def __init__(self, sink: Sink, allowed: tuple[str, ...], ack_default: str, poll_default: str = "0") -> None:
        if sink.parts.path not in ("", "/"):
            raise ValueError(f"sink {sink.url!r}: a Modbus address has no path (the map is set by ?coils= and ?registers=)")
        if sink.parts.username or sink.parts.password:
            raise ValueError(f"sink {sink.url!r}: Modbus TCP has no user or password")
        for name in _query_names(sink):
            if name not in allowed:
                raise ValueError(f"sink {sink.url!r}: unknown option {name!r} (use {', '.join(allowed)})")
        self.unit: int = _number(sink, "unit", "1", int, 0, 255)
        self.coils: int = _number(sink, "coils", "0", int, 0, 65536 - N_COILS)
        self.registers: int = _number(sink, "registers", "0", int, 0, 65536 - N_REGISTERS)
        self.ack: bool = _choice(sink, "ack", ack_default, ("on", "off")) == "on"
        self.ack_timeout: float = _number(sink, "ack_timeout", f"{ACK_TIMEOUT_S:g}", float, 0.05, 600)
        self.little: bool = _choice(sink, "words", "big", ("big", "little")) == "little"
        self.poll: float = _number(sink, "poll", poll_default, float, 0, 60) if "poll" in allowed else 0.0
        if 0 < self.poll < 0.01:
            raise ValueError(f"sink {sink.url!r}: ?poll= must be 0 (off) or at least 0.01 s")


def _query_names(sink: Sink) -> list[str]:
    return [name for name, _ in parse_qsl(sink.parts.query, keep_blank_values=True)]


# --- what the PLC sees ------------------------------------------------------------------------------
class _Image:
    """The coils and registers as inspector means them, guarded by ``cond``: the verdict presented,
    the handshake's flags, the counters and the station state. Both modes build what they serve or
    write from it, so the two cannot drift apart."""

    def __init__(self, little: bool) -> None:
        self.cond = threading.Condition()
        self.little = little
        self.state = "ready"
        self.busy = False  # a part in progress: taken by a trigger, or its verdict waiting for the ack
        self.valid = self.ok = self.ng = self.error = False
        self.score: float | None = None
        self.threshold: float | None = None
        self.frame = self.version = 0
        self.inspected = self.ng_count = self.errors = 0
        self.sequence = 0  # 0: nothing presented since start; then 1 .. 65535, 1 again
        self.presented: str | None = None
        self.acked: str | None = None
        self._counted: collections.deque[str] = collections.deque()
        self._counted_set: set[str] = set()

    def present(self, message: dict[str, Any], handshake: bool) -> bool:
        """Show a verdict (True if it is not the one already shown: a new sequence number)."""
        vid = str(message["id"])
        new = vid != self.presented
        if new:
            decision = message.get("decision")
            self.ok = decision == OK
            self.ng = not self.ok  # NG, ERROR and anything unknown: the line rejects it
            self.error = decision == ERROR
            self.score, self.threshold = message.get("score"), message.get("threshold")
            self.frame = int(message.get("frame") or 0)
            self.version = max(0, min(int(message.get("version") or 0), 0xFFFF))
            if vid not in self._counted_set:
                self.inspected += 1
                self.ng_count += self.ng
                self.errors += self.error
                self._counted.append(vid)
                self._counted_set.add(vid)
                if len(self._counted) > COUNTED_KEPT:
                    self._counted_set.discard(self._counted.popleft())
            self.sequence = self.sequence % 0xFFFF + 1
            self.presented = vid
        self.valid = True
        self.busy = handshake
        return new

    def acknowledge(self) -> bool:
        """The PLC wrote ack: the verdict shown is delivered (False when none was waiting)."""
        if not self.valid or self.presented is None or self.acked == self.presented:
            return False
        self.acked = self.presented
        self.valid = self.busy = False
        self.cond.notify_all()
        return True

    def coils(self) -> list[bool]:
        busy = self.busy or self.state == "busy"
        bits = [False] * N_COILS
        bits[C_READY] = self.state == "ready" and not busy
        bits[C_BUSY] = busy
        bits[C_OK], bits[C_NG], bits[C_VALID], bits[C_ERROR] = self.ok, self.ng, self.valid, self.error
        return bits

    def registers(self) -> list[int]:
        words = (float32_words(self.score, self.little) + float32_words(self.threshold, self.little)
                 + uint32_words(self.frame, self.little) + uint32_words(self.inspected, self.little)
                 + uint32_words(self.ng_count, self.little) + uint32_words(self.errors, self.little))
        return words + [self.version, STATION_STATES.index(self.state), self.sequence]


def _check_state(state: str) -> str:
    if state not in STATION_STATES:
        raise ValueError(f"unknown station state {state!r} (one of {', '.join(STATION_STATES)})")
    return state


def _same_verdict(coils: list[bool], registers: list[int], want_coils: list[bool], want_registers: list[int]) -> bool:
    """Read-back: the verdict's values and its sequence number (not ready/busy/state, which a
    trigger or the live loop may change in between)."""
    return (all(coils[i] == want_coils[i] for i in (C_OK, C_NG, C_VALID, C_ERROR))
            and all(registers[i] == want_registers[i] for i in VERDICT_REGISTERS)
            and registers[REGISTERS["sequence"]] == want_registers[REGISTERS["sequence"]])


class _Triggers:
    """Calls the trigger hook on a thread of its own, in order, so a slow hook never holds up the
    Modbus server's answers or the PLC poll."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"modbus trigger {self._sink.key}")

    def fire(self) -> None:
        if self._pool is not None:
            try:
                self._pool.submit(self._call)
            except RuntimeError:  # closing
                pass

    def _call(self) -> None:
        try:
            self._sink.trigger()
        except Exception:  # the hook's own failure must not stop later triggers
            log.exception("trigger hook of %s failed", self._sink.key)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


# --- server mode ------------------------------------------------------------------------------------
class ModbusServerSink(Sink):
    """inspector's own Modbus TCP server on HOST:PORT (own thread and event loop), with the map of
    docs/line-outputs/modbus.md. Every request is answered from the ``_Image`` under its lock, so
    the PLC never reads half of one verdict and half of the next."""

    scheme = "modbus"
    default_port = 502

    def __init__(self, url: str, station: str) -> None:
        super().__init__(url, station)
        self.options = _Options(self, _SERVER_OPTIONS, ack_default="on")
        self._image = _Image(self.options.little)
        self._triggers = _Triggers(self)
        self._closing = threading.Event()
        self._listening = threading.Event()
        self._listen_error = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | None = None
        self._thread: threading.Thread | None = None
        self._device = self._datastore()  # built here, so a map pymodbus refuses fails at open, not in the thread

    # the Sink interface
    def start(self) -> None:
        self._triggers.start()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve_thread, name=f"modbus server {self.key}", daemon=True)
        self._thread.start()

    def send(self, message: dict[str, Any], timeout: float) -> None:
        if not self._listening.wait(min(timeout, 1.0)):  # just started: listening takes milliseconds
            raise SinkError(f"Modbus server on {self.host}:{self.port} is not listening{self._listen_error}")
        vid = str(message["id"])
        image, ack = self._image, self.options.ack
        with image.cond:
            if ack and image.acked == vid:
                return  # the PLC acknowledged it after the last attempt gave up waiting
            image.present(message, handshake=ack)
            want_coils, want_registers = image.coils(), image.registers()
            if ack:
                wait = self.options.ack_timeout
                if not image.cond.wait_for(lambda: image.acked == vid or self._closing.is_set(), wait):
                    raise SinkError(f"no ack from the PLC within {wait:g} s{'' if self._connections() else ' (no PLC connected)'}")
                if image.acked != vid:
                    raise SinkError(f"Modbus server on {self.host}:{self.port} closed before the PLC's ack")
                return
        coils, registers = self._read_back(min(timeout, IO_TIMEOUT_S))
        if not _same_verdict(coils, registers, want_coils, want_registers):
            raise SinkError(f"Modbus server on {self.host}:{self.port}: the verdict did not read back as written")

    def set_state(self, state: str) -> None:
        with self._image.cond:
            self._image.state = _check_state(state)

    def close(self) -> None:
        with self._image.cond:
            self._image.state = "offline"
            self._closing.set()
            self._image.cond.notify_all()
        if self._thread is not None:
            self._thread.join(5.0)
            if self._thread.is_alive():
                log.warning("Modbus server %s did not stop within 5 s", self.key)
        self._triggers.close()

    # the server's thread and loop
    def _serve_thread(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _serve(self) -> None:
        """Listen (again every second while the address is taken), serve until closed."""
        server = None
        while not self._closing.is_set():
            server = ModbusTcpServer(self._device, address=(self.host, self.port))
            try:
                await server.serve_forever(background=True)
                break
            except (RuntimeError, OSError):
                self._listen_error = f": cannot listen on {self.host}:{self.port} (the port is taken, or not an address of this machine)"
                server = None
                await self._sleep(1.0)
        if server is None:
            return
        self._server = server
        self._listen_error = ""
        self._listening.set()
        log.info("Modbus server for %s listening on %s:%d (unit %d)", self.station, self.host, self.port, self.options.unit)
        try:
            while not self._closing.is_set():
                await asyncio.sleep(0.05)
        finally:
            self._listening.clear()
            await server.shutdown()

    async def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._closing.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def _datastore(self) -> list[SimDevice]:
        """The datastore: the map's coils and registers (and the same again as discrete inputs and
        input registers), every access passing through ``_on_request``; with a unit id other than
        0, a stand-in for every other unit that answers exception 11 (as a gateway does for a
        device that is not there) instead of a datastore failure."""
        o = self.options

        def blocks() -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
            bits = [SimData(o.coils, values=[False] * N_COILS, datatype=DataType.BITS)]
            words = [SimData(o.registers, count=N_REGISTERS, values=0, datatype=DataType.REGISTERS)]
            return bits, [SimData(o.coils, values=[False] * N_COILS, datatype=DataType.BITS)], words, \
                [SimData(o.registers, count=N_REGISTERS, values=0, datatype=DataType.REGISTERS)]

        async def other_unit(*_args: Any) -> ExcCodes:
            return ExcCodes.GATEWAY_NO_RESPONSE

        devices = [SimDevice(o.unit, simdata=blocks(), action=self._on_request)]
        if o.unit != 0:
            devices.append(SimDevice(0, simdata=blocks(), action=other_unit))
        return devices

    async def _on_request(self, function_code: int, start_address: int, address: int, count: int,
                          current: list[int], values: list[int] | list[bool] | None) -> ExcCodes | None:
        """pymodbus calls this before each read or write of the datastore: a read gets the image
        copied in first; a write is checked (the PLC writes only ack and trigger) and acted on."""
        image = self._image
        if function_code in (1, 2, 5, 15):  # coils, discrete inputs
            if values is None:
                if function_code in (1, 2):  # (5 and 15 read back what was just written, as Modbus echoes it)
                    with image.cond:
                        bits = image.coils()
                    pad = self.options.coils % 16
                    packed = _pack_bits([False] * pad + bits)
                    current[:len(packed)] = packed
                return None
            first = address - self.options.coils
            wrote = list(range(first, first + len(values)))
            if any(i not in PLC_WRITES for i in wrote):
                return ExcCodes.ILLEGAL_ADDRESS
            fire = False
            with image.cond:
                for i, value in zip(wrote, values):
                    if value and i == C_ACK and self.options.ack:  # with ack off, result_valid stays 1
                        image.acknowledge()
                    elif value and i == C_TRIGGER:  # taken at once: trigger reads 0 again, busy says it was taken
                        image.busy = fire = True
            if fire:
                self._triggers.fire()
            return None
        if values is not None:  # holding registers are inspector's
            return ExcCodes.ILLEGAL_ADDRESS
        with image.cond:
            current[:N_REGISTERS] = image.registers()
        return None

    def _read_back(self, timeout: float) -> tuple[list[bool], list[int]]:
        """The verdict as the datastore serves it (what a PLC reading now gets)."""
        server, loop, o = self._server, self._loop, self.options
        if server is None or loop is None:
            raise SinkError(f"Modbus server on {self.host}:{self.port} is not listening")

        async def read() -> tuple[Any, Any]:
            return (await server.context.async_getValues(o.unit, 1, o.coils, N_COILS),
                    await server.context.async_getValues(o.unit, 3, o.registers, N_REGISTERS))

        try:
            coils, registers = asyncio.run_coroutine_threadsafe(read(), loop).result(timeout)
        except Exception as e:  # noqa: BLE001 — a stopped loop, a timeout: not read back
            raise SinkError(f"Modbus server on {self.host}:{self.port}: read-back failed: {first_line(e)}") from None
        if not isinstance(coils, list) or not isinstance(registers, list):
            raise SinkError(f"Modbus server on {self.host}:{self.port}: read-back refused ({coils}, {registers})")
        return coils, registers

    def _connections(self) -> int:
        return len(getattr(self._server, "active_connections", None) or {})


# --- client mode ------------------------------------------------------------------------------------
class ModbusClientSink(Sink):
    """Writes the map into the PLC's own memory (the PLC is the Modbus server) at ``?coils=`` and
    ``?registers=``; delivered when it reads back (or, with ``?ack=on``, when the PLC sets ack). A
    poller reads the trigger (and ack) coils every ``?poll=`` seconds and reconnects after the PLC
    restarts, writing the image again into its fresh memory."""

    scheme = "modbus+client"
    default_port = 502

    def __init__(self, url: str, station: str) -> None:
        super().__init__(url, station)
        self.options = _Options(self, _CLIENT_OPTIONS, ack_default="off", poll_default=f"{POLL_S:g}")
        self._image = _Image(self.options.little)
        self._triggers = _Triggers(self)
        self._io = threading.Lock()  # one request at a time on the one connection
        self._client: ModbusTcpClient | None = None
        self._dirty = True  # the PLC's memory may not hold the image (start, a reconnect, a new state)
        self._closing = threading.Event()
        self._poller: threading.Thread | None = None

    def start(self) -> None:
        self._client = ModbusTcpClient(self.host, port=self.port, timeout=IO_TIMEOUT_S, retries=0)
        self._triggers.start()
        if self.options.poll > 0:
            self._poller = threading.Thread(target=self._poll, name=f"modbus poll {self.key}", daemon=True)
            self._poller.start()

    def send(self, message: dict[str, Any], timeout: float) -> None:
        vid, image, ack = str(message["id"]), self._image, self.options.ack
        with self._io:
            with image.cond:
                if ack and image.acked == vid:
                    return  # the PLC's ack was seen after the last attempt gave up waiting
                new = image.present(message, handshake=ack)
            coils, registers = self._write_image(reset_ack=new and ack)
            if not ack:
                if not _same_verdict(self._read_coils(), self._read_registers(), coils, registers):
                    raise SinkError(f"PLC at {self.host}:{self.port}: the verdict did not read back as written")
                return
        deadline = time.monotonic() + self.options.ack_timeout
        while not self._closing.is_set():
            with self._io:
                self._handle(self._read_coils())
            with image.cond:
                if image.acked == vid:
                    return
            if time.monotonic() >= deadline:
                raise SinkError(f"no ack from the PLC within {self.options.ack_timeout:g} s")
            self._closing.wait(ACK_POLL_S)
        raise SinkError(f"PLC sink {self.key} closed before the PLC's ack")

    def set_state(self, state: str) -> None:
        with self._image.cond:
            self._image.state = _check_state(state)
        self._dirty = True  # written by the poller (or the next verdict): never blocks the live loop

    def close(self) -> None:
        with self._image.cond:
            self._image.state = "offline"
        self._closing.set()
        if self._poller is not None:
            self._poller.join(2 * IO_TIMEOUT_S + 1)
        if self._client is not None:
            with self._io:
                if self._client.connected:
                    try:
                        self._write_image(reset_ack=False)  # offline: ready 0, state 4
                    except SinkError:
                        pass
                self._client.close()
        self._triggers.close()

    # requests, all under self._io
    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        client = self._client
        if client is None:
            raise SinkError(f"PLC sink {self.key} is not started")
        if not client.connected and not client.connect():
            self._dirty = True
            raise SinkError(f"PLC at {self.host}:{self.port} not reached")
        try:
            response = getattr(client, method)(*args, device_id=self.options.unit, **kwargs)
        except (ModbusException, OSError) as e:
            client.close()
            self._dirty = True
            raise SinkError(f"PLC at {self.host}:{self.port}: {what} failed: {' '.join(first_line(e, 200).split())}") from None
        if response.isError():
            raise SinkError(f"PLC at {self.host}:{self.port} refused {what} (Modbus exception {getattr(response, 'exception_code', '?')})")
        return response

    def _write_image(self, reset_ack: bool) -> tuple[list[bool], list[int]]:
        """The image as it is now into the PLC: registers first and result_valid with the verdict
        coils in one request after them, so a PLC that sees result_valid reads this verdict; ack
        cleared before a new verdict shows; the PLC's trigger coil is never written here."""
        o = self.options
        self._dirty = False  # before the snapshot: a state set while writing marks it again
        with self._image.cond:
            coils, registers = self._image.coils(), self._image.registers()
        self._call("writing the registers", "write_registers", o.registers, registers)
        self._call("writing the error coil", "write_coil", o.coils + C_ERROR, coils[C_ERROR])
        if reset_ack:
            self._call("clearing the ack coil", "write_coil", o.coils + C_ACK, False)
        self._call("writing the coils", "write_coils", o.coils, [coils[i] for i in INSPECTOR_WRITES])
        return coils, registers

    def _read_coils(self) -> list[bool]:
        return list(self._call("reading the coils", "read_coils", self.options.coils, count=N_COILS).bits[:N_COILS])

    def _read_registers(self) -> list[int]:
        return list(self._call("reading the registers", "read_holding_registers", self.options.registers, count=N_REGISTERS).registers)

    def _handle(self, coils: list[bool]) -> None:
        """What the PLC wrote: a trigger (taken: cleared, busy set, hook called), an ack."""
        o, image = self.options, self._image
        if coils[C_TRIGGER]:
            self._call("clearing the trigger coil", "write_coil", o.coils + C_TRIGGER, False)  # if this fails, it is seen again
            with image.cond:
                image.busy = True
                now = image.coils()
            self._triggers.fire()  # taken: before anything else can fail
            self._call("writing the coils", "write_coils", o.coils, [now[i] for i in INSPECTOR_WRITES])
        if coils[C_ACK]:
            with image.cond:
                acked = self.options.ack and image.acknowledge()
                now = image.coils()
            if acked:
                self._call("writing the coils", "write_coils", o.coils, [now[i] for i in INSPECTOR_WRITES])
            self._call("clearing the ack coil", "write_coil", o.coils + C_ACK, False)

    def _poll(self) -> None:
        """The poller's thread: triggers and acks, the image after a reconnect or a state change."""
        while not self._closing.is_set():
            pause = self.options.poll
            with self._io:
                try:
                    if self._dirty:
                        self._write_image(reset_ack=False)
                    self._handle(self._read_coils())
                except SinkError as e:
                    log.debug("Modbus poll of %s: %s", self.key, e)
                    pause = max(pause, RECONNECT_S)
            self._closing.wait(pause)
