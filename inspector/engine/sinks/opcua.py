"""OPC UA (asyncua): each verdict written to a documented node set, acknowledged by the PLC's
``Ack`` (the handshake in docs/line-outputs/opcua.md) or by reading the values back.

    opcua://HOST[:PORT][/PATH][?ack=on|off&ack_timeout=S]
        inspector serves the node set itself (default port 4840) under an object named after the
        station, in the namespace ``urn:inspector:station``; ``Trigger()`` asks for a part.
    opcua+client://[USER:PASSWORD@]HOST[:PORT][/PATH]?root=NODEID[&ack=on|off&ack_timeout=S]
        inspector writes into the PLC's own server, to the children (by browse name) of ROOT
        (``ns=3;s=Station`` or ``nsu=urn:plc;s=Station``); a Boolean child ``Trigger`` set true
        by the PLC asks for a part.

asyncua is asyncio; the delivery thread is not. Each sink runs its own event loop on its own
thread (started in ``start``, ended in ``close``) and ``send`` waits on it, every wait bounded.
The handshake is the same code for both modes: only reading and writing a node differ.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import datetime as dt
import logging
import math
import struct
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

from asyncua import Client, Server, ua
from asyncua.common.callback import CallbackType
from asyncua.common.node import Node

from inspector.engine.sinks.base import Sink, SinkError
from inspector.engine.sinks.message import ERROR, STATION_STATES

log = logging.getLogger(__name__)

NAMESPACE = "urn:inspector:station"
ACK_TIMEOUT_S = 3.0  # how long send waits for the PLC's Ack (``?ack_timeout=S``); the same range as Modbus
ACK_TIMEOUT_MIN_S, ACK_TIMEOUT_MAX_S = 0.05, 600.0
READY_WAIT_S = 5.0  # a send waits this long for the server to come up / the connection to be made
REQUEST_TIMEOUT_S = 3.0  # one OPC UA request (client mode)
STOP_WAIT_S = 5.0
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 5.0  # serving or connecting again after a failure, doubling
ACK_POLL_S = 0.05  # client mode reads Ack this often while waiting (server mode is told at once)
TRIGGER_HOOK_S = 2.0  # the trigger hook runs off the loop; the PLC's call returns after at most this
STATE_WAIT_S = 1.0
NO_PART_STATES = ("source-lost", "error", "offline")  # no part is coming: Busy is cleared

V = ua.VariantType
VERDICT_NODES: dict[str, ua.VariantType] = {
    "Decision": V.String, "Score": V.Double, "Threshold": V.Double, "Model": V.String, "ModelVersion": V.Int32,
    "FrameId": V.Int64, "VerdictId": V.String, "Time": V.DateTime,
}
COUNTER_NODES: dict[str, ua.VariantType] = {"Inspected": V.UInt64, "NG": V.UInt64, "Errors": V.UInt64}
FLAG_NODES: dict[str, ua.VariantType] = {"State": V.String, "ResultValid": V.Boolean, "Ack": V.Boolean, "Busy": V.Boolean}
NODES: dict[str, ua.VariantType] = {**VERDICT_NODES, **COUNTER_NODES, **FLAG_NODES}
DESCRIPTIONS = {
    "Decision": "last verdict: OK, NG or ERROR (not judged; reject it as NG)",
    "Score": "anomaly score of the last verdict (NaN: none)",
    "Threshold": "threshold the score was judged against (NaN: none)",
    "Model": "model name", "ModelVersion": "model version",
    "FrameId": "frame number from the source", "VerdictId": "the verdict's id: the same verdict sent again has the same id",
    "Time": "capture time (UTC)",
    "Inspected": "verdicts delivered this run", "NG": "NG verdicts delivered this run", "Errors": "ERROR verdicts delivered this run",
    "State": "ready, busy, source-lost, error or offline",
    "ResultValid": "the verdict values are complete; write Ack=True once read",
    "Ack": "written True by the PLC once it has read the verdict",
    "Busy": "a part is in progress: a trigger was taken, or a verdict waits for the Ack",
}
_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)  # OPC UA's zero DateTime
_INT_TYPES = {V.SByte: (8, True), V.Byte: (8, False), V.Int16: (16, True), V.UInt16: (16, False), V.Int32: (32, True),
              V.UInt32: (32, False), V.Int64: (64, True), V.UInt64: (64, False)}  # bits, signed
_S = ua.StatusCodes
_RECONNECT = {_S.BadSessionIdInvalid, _S.BadSessionClosed, _S.BadSessionNotActivated, _S.BadSecureChannelIdInvalid,
              _S.BadSecureChannelClosed, _S.BadConnectionClosed, _S.BadServerNotConnected, _S.BadCommunicationError,
              _S.BadTimeout, _S.BadShutdown, _S.BadServerHalted}  # status codes that mean: connect again
_ON, _OFF = ("on", "true", "yes", "1"), ("off", "false", "no", "0")
_T = TypeVar("_T")


def _why(e: BaseException) -> str:
    """An exception as one line (a timeout has no text of its own)."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# --- the values -------------------------------------------------------------------------------
def _time(text: Any) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return _EPOCH
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _double(value: Any) -> float:
    return math.nan if value is None else float(value)


def verdict_values(message: dict[str, Any]) -> dict[str, Any]:
    """The verdict nodes' values for one message (null numbers become NaN, so a PLC always reads a Double)."""
    return {
        "Decision": str(message["decision"]),
        "Score": _double(message.get("score")),
        "Threshold": _double(message.get("threshold")),
        "Model": str(message.get("model") or ""),
        "ModelVersion": int(message.get("version") or 0),
        "FrameId": int(message.get("frame") or 0),
        "VerdictId": str(message["id"]),
        "Time": _time(message.get("time")),
    }


def initial_values(state: str) -> dict[str, Any]:
    return {"Decision": "", "Score": math.nan, "Threshold": math.nan, "Model": "", "ModelVersion": 0, "FrameId": 0,
            "VerdictId": "", "Time": _EPOCH, "Inspected": 0, "NG": 0, "Errors": 0, "State": state,
            "ResultValid": False, "Ack": False, "Busy": False}


def _f32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def convert(value: Any, vtype: ua.VariantType) -> Any:
    """``value`` as the node's own type (a PLC may declare Score a Float or FrameId an Int32; an
    integer wraps around to fit, as a PLC counter does, so a test verdict's frame -1 in a UInt32
    cannot stall the outbox); ValueError when it cannot be."""
    if vtype in (V.Double, V.Float):
        return float(value)
    if vtype in _INT_TYPES:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value} is not an integer")
        bits, signed = _INT_TYPES[vtype]
        wrapped = int(value) % (1 << bits)
        return wrapped - (1 << bits) if signed and wrapped >= 1 << (bits - 1) else wrapped
    if vtype == V.Boolean:
        return bool(value)
    if vtype == V.String:
        return value.isoformat().replace("+00:00", "Z") if isinstance(value, dt.datetime) else str(value)
    if vtype == V.DateTime and isinstance(value, dt.datetime):
        return value
    raise ValueError(f"a {type(value).__name__} cannot be written to a {vtype.name} node")


def same(written: Any, read: Any, vtype: ua.VariantType) -> bool:
    """Whether a value read back is the one written (NaN equals NaN; a Float as float32;
    a DateTime to the 100 ns OPC UA keeps)."""
    if vtype in (V.Double, V.Float):
        if not isinstance(read, (int, float)):
            return False
        a, b = (_f32(written), _f32(read)) if vtype == V.Float else (float(written), float(read))
        return (math.isnan(a) and math.isnan(b)) or a == b
    if vtype == V.DateTime:
        if not isinstance(read, dt.datetime):
            return False
        read = read if read.tzinfo else read.replace(tzinfo=dt.timezone.utc)
        return abs((read - written).total_seconds()) < 1e-6
    return written == read


class _Counters:
    """Inspected / NG / Errors over the verdicts delivered this run, each id counted once (a
    verdict presented again after a missing ack is the same part)."""

    def __init__(self) -> None:
        self.inspected = self.ng = self.errors = 0
        self._seen: collections.deque[str] = collections.deque(maxlen=256)

    def count(self, message: dict[str, Any]) -> None:
        if message["id"] in self._seen:
            return
        self._seen.append(message["id"])
        self.inspected += 1
        if message["decision"] == ERROR:
            self.errors += 1
        elif message["decision"] != "OK":
            self.ng += 1

    def values(self) -> dict[str, int]:
        return {"Inspected": self.inspected, "NG": self.ng, "Errors": self.errors}


# --- the loop thread --------------------------------------------------------------------------
class _LoopThread:
    """An asyncio loop of the sink's own on a daemon thread; every call into it is bounded."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=self.name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        if self.loop is None or self.loop.is_closed():
            coro.close()
            raise SinkError(f"{self.name} is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        """Run ``coro`` on the loop and wait at most ``timeout`` seconds for it (SinkError after)."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise SinkError(f"{self.name}: no answer within {timeout:g} s") from None
        except concurrent.futures.CancelledError:
            raise SinkError(f"{self.name} was closed") from None

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        """Cancel what still runs (a send waiting for an ack), stop the loop and end the thread."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return

        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)

        if self._thread is not None and self._thread.is_alive():  # queued even if the loop is only starting
            try:
                asyncio.run_coroutine_threadsafe(cancel_the_rest(), loop).result(timeout)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                log.warning("%s: tasks still running after %g s", self.name, timeout)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            loop.close()


# --- the shared part --------------------------------------------------------------------------
class _OpcUaSink(Sink):
    """The handshake and the thread plumbing of both modes; subclasses say how a node is read
    and written and how the other side is reached (``_supervise``)."""

    default_port = 4840
    options: tuple[str, ...] = ("ack", "ack_timeout")
    ack_default = True

    def __init__(self, url: str, station: str) -> None:
        super().__init__(url, station)
        unknown = sorted(set(parse_qs(self.parts.query, keep_blank_values=True)) - set(self.options))
        if unknown:
            raise ValueError(f"sink {url!r}: unknown option {unknown[0]!r} (use {', '.join(self.options)})")
        ack = (self.option("ack") or ("on" if self.ack_default else "off")).lower()
        if ack not in _ON + _OFF:
            raise ValueError(f"sink {url!r}: ack must be on or off, not {ack!r}")
        self.ack = ack in _ON
        text = self.option("ack_timeout", str(ACK_TIMEOUT_S)) or ""
        try:
            self.ack_timeout = float(text)
        except ValueError:
            self.ack_timeout = math.nan
        if not ACK_TIMEOUT_MIN_S <= self.ack_timeout <= ACK_TIMEOUT_MAX_S:
            raise ValueError(f"sink {url!r}: ack_timeout must be {ACK_TIMEOUT_MIN_S:g} to {ACK_TIMEOUT_MAX_S:g} seconds, not {text!r}")
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.endpoint = f"opc.tcp://{host}:{self.port}{self.parts.path}"
        self._loop = _LoopThread(f"OPC UA {self.key}")
        self._ready = threading.Event()  # serving / connected
        self._why_down = "not started"
        self._stopping = asyncio.Event()  # set on the loop by close(); bound to the loop at its first wait
        self._supervisor: concurrent.futures.Future[None] | None = None
        self._state = "ready"
        self._counters = _Counters()
        self._presented: str | None = None  # the verdict on the nodes waiting for its ack
        self._hook = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="opcua trigger")

    # what a mode provides
    async def _supervise(self) -> None:
        raise NotImplementedError

    def _has(self, name: str) -> bool:
        return True

    async def _write(self, values: dict[str, Any]) -> None:
        raise NotImplementedError

    async def _read(self, names: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def _type(self, name: str) -> ua.VariantType:
        return NODES[name]

    async def _ack_signal(self, timeout: float) -> None:
        """Return when Ack may have changed, or after ``timeout``."""
        await asyncio.sleep(min(timeout, ACK_POLL_S))

    def _failed(self, e: Exception) -> SinkError:
        return SinkError(f"OPC UA {self.host}:{self.port}: {_why(e)}")

    def _no_ack_why(self) -> str:
        """What to add to 'no ack from the PLC' (server mode: whether any client is connected)."""
        return ""

    # the Sink
    def start(self) -> None:
        self._loop.start()
        self._supervisor = self._loop.submit(self._supervise())

    def send(self, message: dict[str, Any], timeout: float) -> None:
        if not self._ready.wait(min(timeout, READY_WAIT_S)):
            raise SinkError(self._why_down)
        wait = (self.ack_timeout if self.ack else 0.0) + max(timeout, REQUEST_TIMEOUT_S) * 2
        self._loop.call(self._guarded(self._deliver(message)), wait)

    def set_state(self, state: str) -> None:
        if state not in STATION_STATES:
            raise ValueError(f"unknown station state {state!r} (one of {', '.join(STATION_STATES)})")
        self._state = state
        if not self._ready.is_set():
            return  # shown when served / connected
        values: dict[str, Any] = {"State": state}
        if state in NO_PART_STATES:
            values["Busy"] = False
        try:
            self._loop.call(self._guarded(self._write(self._only(values))), STATE_WAIT_S)
        except SinkError as e:
            log.debug("state %s to %s: %s", state, self.key, e)

    def close(self) -> None:
        if self._loop.loop is None:
            return
        if not self._loop.loop.is_closed():
            self._loop.loop.call_soon_threadsafe(self._stopping.set)
        if self._supervisor is not None:
            try:
                self._supervisor.result(STOP_WAIT_S + 2)
            except Exception as e:  # noqa: BLE001 — closing is best effort, bounded
                log.debug("closing %s: %s", self.key, e)
        self._loop.stop()
        self._hook.shutdown(wait=False, cancel_futures=True)
        self._ready.clear()

    # the handshake
    def _only(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if self._has(k)}

    async def _guarded(self, coro: Coroutine[Any, Any, _T]) -> _T:
        try:
            return await coro
        except SinkError:
            raise
        except Exception as e:  # noqa: BLE001 — asyncua's errors (status codes, timeouts, a closed socket) are refusals
            raise self._failed(e) from None

    async def _deliver(self, message: dict[str, Any]) -> None:
        """Present one verdict: ResultValid=False, the values, ResultValid=True (and Busy=True
        with the handshake on); check them read back; with the handshake on, wait for Ack=True,
        then clear ResultValid, Ack and Busy. A verdict already presented (its ack missed) stays
        as it is, so an ack written between two attempts still counts."""
        values = self._only(verdict_values(message))
        vid = str(message["id"])
        if self._presented != vid:
            self._presented = None
            await self._write(self._only({"ResultValid": False, **({"Ack": False} if self.ack else {})}))
            self._counters.count(message)
            await self._write({**values, **self._only(self._counters.values())})
            await self._write(self._only({"ResultValid": True, **({"Busy": True} if self.ack else {})}))
        back = await self._read(list(values))
        wrong = [n for n, v in values.items() if not same(convert(v, self._type(n)), back.get(n), self._type(n))]
        if wrong:
            self._presented = None  # written again on the next attempt
            n = wrong[0]
            raise SinkError(f"OPC UA {self.host}:{self.port}: {n} read back as {back.get(n)!r}, not {values[n]!r}")
        self._presented = vid
        if self.ack:
            deadline = time.monotonic() + self.ack_timeout
            while not (await self._read(["Ack"]))["Ack"]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SinkError(f"no ack from the PLC within {self.ack_timeout:g} s{self._no_ack_why()}")
                await self._ack_signal(remaining)
            await self._write(self._only({"ResultValid": False, "Ack": False, "Busy": False}))
        else:
            await self._write(self._only({"Busy": False}))
        self._presented = None

    async def _run_hook(self) -> None:
        """Call the trigger hook off the loop (it may block; the server must keep answering)."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(asyncio.shield(loop.run_in_executor(self._hook, self.trigger)), TRIGGER_HOOK_S)
        except asyncio.TimeoutError:
            log.warning("%s: the trigger hook is still running after %g s", self.key, TRIGGER_HOOK_S)

    async def _wait_stopping(self, timeout: float) -> bool:
        """Whether close() was called (waiting at most ``timeout`` seconds for it)."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self._stopping.is_set()


# --- inspector serves ------------------------------------------------------------------------
class OpcUaServerSink(_OpcUaSink):
    """inspector's own OPC UA server with the station's node set; the PLC is the client."""

    scheme = "opcua"

    def __init__(self, url: str, station: str) -> None:
        super().__init__(url, station)
        if self.parts.username or self.parts.password:
            raise ValueError(f"sink {url!r}: a served node set takes no user name or password (anonymous, no security)")
        self.name = station or "station"
        self._why_down = f"the OPC UA server on {self.host}:{self.port} is not serving yet"
        self._server: Server | None = None
        self._ids: dict[str, ua.NodeId] = {}
        self._acked = asyncio.Event()

    def node_id(self, name: str) -> str:
        """The string node id a PLC can address directly (namespace ``urn:inspector:station``)."""
        return f"{self.name}.{name}"

    async def _build(self) -> Server:
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"inspector {self.name}")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace(NAMESPACE)
        station = await server.nodes.objects.add_object(ua.NodeId(self.name, ns), ua.QualifiedName(self.name, ns))
        ids: dict[str, ua.NodeId] = {}
        for name, value in initial_values(self._state).items():
            var = await station.add_variable(ua.NodeId(self.node_id(name), ns), ua.QualifiedName(name, ns), value, NODES[name])
            await var.write_attribute(ua.AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(DESCRIPTIONS[name]))))
            ids[name] = var.nodeid
        await (server.get_node(ids["Ack"])).set_writable()
        await station.add_method(ua.NodeId(self.node_id("Trigger"), ns), ua.QualifiedName("Trigger", ns), self._on_trigger, [], [])
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_write)
        self._ids = ids
        return server

    async def _supervise(self) -> None:
        delay = RETRY_FIRST_S
        while not self._stopping.is_set():
            server = None
            try:
                server = await self._build()
                await server.start()
            except Exception as e:  # noqa: BLE001 — the port taken, the host not this machine's: said, tried again
                why = f"cannot serve OPC UA on {self.host}:{self.port}: {_why(e)}"
                (log.debug if why == self._why_down else log.warning)("line output %s: %s", self.key, why)
                self._why_down = why
                if await self._wait_stopping(delay):
                    return
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self._server = server
            self._ready.set()
            try:
                await self._stopping.wait()
            finally:
                self._ready.clear()
                await self._stop_server(server)
                self._server = None
            return

    async def _stop_server(self, server: Server) -> None:
        """Say offline, stop listening, then stop (each step bounded, each best effort)."""
        try:
            await asyncio.wait_for(self._write({"State": "offline", "ResultValid": False, "Busy": False}), STATE_WAIT_S)
        except Exception as e:  # noqa: BLE001
            log.debug("offline on %s: %s", self.key, e)
        listener = getattr(server.bserver, "_server", None)  # asyncua's listening socket
        if listener is not None:  # first: a PLC connecting again while stop() drops the others would keep stop() waiting for it
            listener.close()
        try:
            await asyncio.wait_for(server.stop(), STOP_WAIT_S)
        except Exception as e:  # noqa: BLE001
            log.debug("stopping the OPC UA server of %s: %s", self.key, e)

    async def _write(self, values: dict[str, Any]) -> None:
        server = self._server
        if server is None:
            raise SinkError(self._why_down)
        now = dt.datetime.now(dt.timezone.utc)
        for name, value in values.items():
            dv = ua.DataValue(ua.Variant(value, NODES[name]), SourceTimestamp=now, ServerTimestamp=now)
            await server.write_attribute_value(self._ids[name], dv)

    async def _read(self, names: list[str]) -> dict[str, Any]:
        server = self._server
        if server is None:
            raise SinkError(self._why_down)
        return {n: await server.get_node(self._ids[n]).read_value() for n in names}

    def _no_ack_why(self) -> str:
        server = self._server
        if server is not None and server.bserver is not None and not server.bserver.clients:
            return " (no PLC connected)"
        return ""

    async def _ack_signal(self, timeout: float) -> None:
        try:  # a write since the last look (even just before this wait) wakes it at once
            await asyncio.wait_for(self._acked.wait(), min(timeout, 0.5))
        except asyncio.TimeoutError:
            pass
        self._acked.clear()

    async def _on_write(self, event: Any, dispatcher: Any) -> None:
        """A client wrote: wake a send waiting for Ack at once."""
        ack = self._ids.get("Ack")
        if any(w.NodeId == ack for w in event.request_params.NodesToWrite):
            self._acked.set()

    async def _on_trigger(self, parent: ua.NodeId) -> list[ua.Variant] | ua.StatusCode:
        """``Trigger()``: Busy=True and the line's trigger hook. A station without a hook (it runs
        free) answers BadNotSupported, so the PLC hears that its trigger went nowhere."""
        if self.on_trigger is None:
            return ua.StatusCode(ua.StatusCodes.BadNotSupported)
        await self._write({"Busy": True})
        await self._run_hook()
        return []


# --- inspector writes into the PLC's server ---------------------------------------------------
class _TriggerWatch:
    """asyncua's subscription handler for the PLC's ``Trigger`` flag."""

    def __init__(self, sink: OpcUaClientSink) -> None:
        self.sink = sink

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        if val is True:
            task = asyncio.get_running_loop().create_task(self.sink._take_trigger())
            self.sink._tasks.add(task)
            task.add_done_callback(self.sink._tasks.discard)

    def status_change_notification(self, status: Any) -> None:
        pass


class OpcUaClientSink(_OpcUaSink):
    """inspector as a client of the PLC's own OPC UA server; acknowledged by reading back
    (and, with ``?ack=on``, by the PLC's Ack)."""

    scheme = "opcua+client"
    options = ("root", "ack", "ack_timeout")
    ack_default = False

    def __init__(self, url: str, station: str) -> None:
        super().__init__(url, station)
        root = self.option("root")
        if not root:
            raise ValueError(f"sink {url!r} names no node to write under: add ?root=<node id>, e.g. ?root=ns=3;s=Station")
        try:
            self.root = ua.NodeId.from_string(root)
        except Exception:  # noqa: BLE001 — asyncua raises several kinds for a malformed id
            raise ValueError(f"sink {url!r}: root {root!r} is not an OPC UA node id (e.g. ns=3;s=Station or nsu=urn:plc;s=Station)") from None
        self.username = unquote(self.parts.username) if self.parts.username else None
        self.password = unquote(self.parts.password) if self.parts.password else None
        path = self.parts.path if self.parts.path not in ("", "/") else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.endpoint = f"opc.tcp://{host}:{self.port}{path}"
        self._why_down = f"OPC UA server {self.host}:{self.port} not reached yet"
        self._client: Client | None = None
        self._children: dict[str, tuple[Node, ua.VariantType]] = {}
        self._lost = asyncio.Event()  # a request failed or the watchdog saw the server go: connect again
        self._tasks: set[asyncio.Task[None]] = set()

    def _has(self, name: str) -> bool:
        return name in self._children

    def _type(self, name: str) -> ua.VariantType:
        return self._children[name][1]

    def _failed(self, e: Exception) -> SinkError:
        if isinstance(e, ua.UaStatusCodeError):
            reconnect = e.code in _RECONNECT
        else:  # a timeout or a closed socket, not a value that would not encode
            reconnect = not isinstance(e, (struct.error, ValueError, TypeError, OverflowError))
        if reconnect:
            self._lost.set()
        return SinkError(f"OPC UA server {self.host}:{self.port}: {_why(e)}")

    async def _resolve_root(self, client: Client) -> ua.NodeId:
        uri = getattr(self.root, "NamespaceUri", None)
        if not uri:
            return ua.NodeId(self.root.Identifier, self.root.NamespaceIndex, self.root.NodeIdType)
        namespaces = await client.get_namespace_array()
        if uri not in namespaces:
            raise SinkError(f"OPC UA server {self.host}:{self.port} has no namespace {uri!r}")
        return ua.NodeId(self.root.Identifier, namespaces.index(uri), self.root.NodeIdType)

    async def _discover(self, client: Client) -> dict[str, tuple[Node, ua.VariantType]]:
        """The root's variables that are in the node set, each with its declared type."""
        root = client.get_node(await self._resolve_root(client))
        found: dict[str, tuple[Node, ua.VariantType]] = {}
        for ref in await root.get_children_descriptions():
            name = ref.BrowseName.Name
            if ref.NodeClass == ua.NodeClass.Variable and (name in NODES or name == "Trigger"):
                node = client.get_node(ref.NodeId)
                found[name] = (node, await node.read_data_type_as_variant_type())
        need = ["Decision"] + (["ResultValid", "Ack"] if self.ack else [])
        missing = [n for n in need if n not in found]
        if missing:
            raise SinkError(f"OPC UA node {self.option('root')} on {self.host}:{self.port} has no {', '.join(missing)} child")
        return found

    async def _supervise(self) -> None:
        delay = RETRY_FIRST_S
        while not self._stopping.is_set():
            client = Client(self.endpoint, timeout=REQUEST_TIMEOUT_S, watchdog_intervall=1.0)
            if self.username:
                client.set_user(self.username)
            if self.password:
                client.set_password(self.password)

            async def lost(exc: Exception) -> None:
                self._lost.set()

            client.connection_lost_callback = lost
            connected = False
            try:
                await asyncio.wait_for(client.connect(), REQUEST_TIMEOUT_S * 2)
                connected = True
                self._children = await self._discover(client)
                self._client = client
                if "Trigger" in self._children:
                    sub = await client.create_subscription(100, _TriggerWatch(self))
                    await sub.subscribe_data_change(self._children["Trigger"][0])
                await self._write(self._only({"State": self._state}))
            except Exception as e:  # noqa: BLE001 — the server down or not what the URL says: said, tried again
                self._client = None
                self._why_down = str(e) if isinstance(e, SinkError) else f"OPC UA server {self.host}:{self.port} not reached: {_why(e)}"
                log.debug("line output %s: %s", self.key, self._why_down)
                if connected:
                    await self._disconnect(client)
                else:
                    client.disconnect_socket()
                if await self._wait_stopping(delay):
                    return
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_FIRST_S
            self._lost.clear()
            self._presented = None  # a restarted server holds none of it
            self._ready.set()
            stopping = asyncio.ensure_future(self._stopping.wait())
            lost_task = asyncio.ensure_future(self._lost.wait())
            try:
                await asyncio.wait([stopping, lost_task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                lost_task.cancel()
                self._ready.clear()
                self._why_down = f"connection to the OPC UA server {self.host}:{self.port} lost; connecting again"
                if self._stopping.is_set():
                    try:
                        await asyncio.wait_for(self._write(self._only({"State": "offline", "Busy": False})), STATE_WAIT_S)
                    except Exception as e:  # noqa: BLE001 — best effort on the way out
                        log.debug("offline to %s: %s", self.key, e)
                self._client = None
                await self._disconnect(client)

    @staticmethod
    async def _disconnect(client: Client) -> None:
        try:
            await asyncio.wait_for(client.disconnect(), STATE_WAIT_S * 2)
        except Exception:  # noqa: BLE001 — a server that is gone cannot be told goodbye
            client.disconnect_socket()

    async def _write(self, values: dict[str, Any]) -> None:
        client = self._client
        if client is None:
            raise SinkError(self._why_down)
        if not values:
            return
        nodes, dvs = [], []
        for name, value in values.items():
            node, vtype = self._children[name]
            try:
                converted = convert(value, vtype)
            except (ValueError, OverflowError) as e:
                raise SinkError(f"OPC UA {name} on {self.host}:{self.port}: {e}") from None
            nodes.append(node)
            dvs.append(ua.DataValue(ua.Variant(converted, vtype)))  # no timestamps: many PLCs refuse a write that has them
        for name, status in zip(values, await client.write_values(nodes, dvs, raise_on_partial_error=False)):
            if not status.is_good():
                raise SinkError(f"OPC UA server {self.host}:{self.port} refused {name}: {status.name}")

    async def _read(self, names: list[str]) -> dict[str, Any]:
        client = self._client
        if client is None:
            raise SinkError(self._why_down)
        return dict(zip(names, await client.read_values([self._children[n][0] for n in names])))

    async def _take_trigger(self) -> None:
        """The PLC set Trigger: take it (Trigger=False, Busy=True) and call the hook. Without a
        hook the flag is left set, so the PLC sees that nobody took it."""
        if self.on_trigger is None or self._client is None:
            return
        try:
            await self._write(self._only({"Trigger": False, "Busy": True}))
        except Exception as e:  # noqa: BLE001 — the next change of the flag tries again
            log.warning("line output %s: taking the trigger failed: %s", self.key, e)
            return
        await self._run_hook()
