"""OPC UA line outputs against real OPC UA peers on 127.0.0.1: an asyncua client acting as the
PLC (Trigger, Busy, each verdict read when ResultValid, Ack), and an asyncua server standing in
for the PLC's own server (stopped and started again mid-run). Every wait is bounded."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import threading
import time
from collections.abc import Coroutine
from typing import Any

import pytest
from asyncua import Client, Server, ua
from asyncua.common.callback import CallbackType

from inspector.engine.results_store import ResultsStore
from inspector.engine.sinks import LineOutputs, SinkError, open_sink
from inspector.engine.sinks.opcua import NAMESPACE
from tests.line.servers import WAIT_S, free_port, in_order_once, wait_until

STATION = "line1"
VALUES = ["Decision", "Score", "Threshold", "Model", "ModelVersion", "FrameId", "VerdictId", "Time"]


def record(store: ResultsStore, outputs: LineOutputs, n: int, start: int = 0) -> list[str]:
    """``n`` stored results (frame i: score i % 7, NG above 5), announced to the outputs; their verdict ids."""
    ids = []
    for i in range(start, start + n):
        ids.append(store.record(source="test", frame_id=i, model="m", model_version=2, score=float(i % 7), threshold=5.0,
                                decision="NG" if i % 7 > 5 else "OK", rule="score"))
        outputs.stored()
    return [f"{store.store_id}:{i}" for i in ids]


def collapsed(ids: list[str]) -> list[str]:
    """The ids with a repeat straight after itself dropped: a verdict written again after a
    failed attempt is that; any other repeat, or a gap, would be out of order."""
    return [v for i, v in enumerate(ids) if i == 0 or ids[i - 1] != v]


class Aio:
    """A background asyncio loop for the test's own OPC UA peers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = WAIT_S) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5)

        self.run(cancel_the_rest(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


@pytest.fixture
def aio():
    a = Aio()
    yield a
    a.close()


class Plc:
    """An asyncua client as the PLC: once started, it polls every 20 ms and, while ``acking``,
    reads the verdict whenever ResultValid is true and Ack false, keeps it (once per id) and
    writes Ack=True."""

    def __init__(self, aio: Aio, endpoint: str) -> None:
        self.aio, self.endpoint = aio, endpoint
        self.client = Client(endpoint, timeout=2)
        self.acking = True
        self.received: list[dict[str, Any]] = []  # one per id, in order
        self.acks: list[str] = []  # every Ack written, with the id it was for
        self._task: asyncio.Task | None = None
        aio.run(self._connect())

    async def _connect(self) -> None:
        deadline = time.monotonic() + WAIT_S
        while True:  # the served node set takes a second or two to come up
            try:
                await self.client.connect()
                break
            except (OSError, asyncio.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        self.ns = await self.client.get_namespace_index(NAMESPACE)

    def node(self, name: str):
        return self.client.get_node(ua.NodeId(f"{STATION}.{name}" if name else STATION, self.ns))

    def read(self, *names: str) -> list[Any]:
        return self.aio.run(self.client.read_values([self.node(n) for n in names]))

    def write(self, name: str, value: Any, vtype: ua.VariantType) -> None:
        self.aio.run(self.node(name).write_value(ua.DataValue(ua.Variant(value, vtype))))

    def trigger(self) -> None:
        self.aio.run(self.node("").call_method(ua.QualifiedName("Trigger", self.ns)))

    def start(self) -> None:
        async def cycle() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                valid, ack, vid = await self.client.read_values([self.node(n) for n in ("ResultValid", "Ack", "VerdictId")])
                if self.acking and valid and not ack:
                    if vid not in {r["VerdictId"] for r in self.received}:
                        values = await self.client.read_values([self.node(n) for n in VALUES])
                        self.received.append(dict(zip(VALUES, values)))
                    await self.node("Ack").write_value(ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))
                    self.acks.append(vid)
                await asyncio.sleep(0.02)

        self._task = asyncio.run_coroutine_threadsafe(cycle(), self.aio.loop)

    def ids(self) -> list[str]:
        return [r["VerdictId"] for r in list(self.received)]

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        try:
            self.aio.run(self.client.disconnect(), 5)
        except Exception:  # noqa: BLE001 — the server may be gone already
            pass


def test_server_mode_a_plc_gets_every_verdict_in_order_and_a_missing_ack_is_an_alarm(tmp_path, aio):
    store = ResultsStore(tmp_path / "results.sqlite")
    port = free_port()
    outputs = LineOutputs.open([f"opcua://127.0.0.1:{port}/inspector?ack_timeout=0.5"], store, STATION)
    outputs.start()
    plc = Plc(aio, f"opc.tcp://127.0.0.1:{port}/inspector")
    try:
        plc.trigger()
        assert outputs.gate.pulled == 1, "Trigger() calls the line's trigger hook"
        assert plc.read("Busy") == [True]
        with pytest.raises(ua.UaStatusCodeError):
            plc.write("Decision", "OK", ua.VariantType.String)  # only Ack is the PLC's to write
        plc.start()

        expected = record(store, outputs, 8)
        nan_id = store.record(source="test", frame_id=8, model="m", model_version=2, score=float("nan"), threshold=5.0,
                              decision="OK")
        outputs.stored()
        expected.append(f"{store.store_id}:{nan_id}")
        wait_until(lambda: plc.ids() == expected, what="the first 9 verdicts", show=plc.ids)
        wait_until(lambda: plc.read("ResultValid", "Ack", "Busy") == [False, False, False], what="the handshake to end")

        plc.acking = False  # the PLC stops acknowledging
        late = record(store, outputs, 3, start=9)
        wait_until(lambda: "no ack from the PLC within 0.5 s" in outputs.status()[0].alarm, what="the missing ack as an alarm",
                   show=outputs.status)
        time.sleep(1.0)  # more retries: the same verdict stays presented, nothing after it is skipped to
        assert plc.read("ResultValid", "Ack", "Busy", "VerdictId") == [True, False, True, late[0]]
        assert outputs.status()[0].backlog == 3
        expected += late

        plc.acking = True
        wait_until(lambda: plc.ids() == expected, what="all 12 verdicts once the PLC acks again", show=plc.ids)
        wait_until(lambda: outputs.status()[0].backlog == 0 and not outputs.status()[0].alarm, what="the alarm to clear")
        assert plc.acks == expected, "each verdict acknowledged once, in order"
        assert plc.read("Inspected", "NG", "Errors") == [12, 2, 0]  # NG: frame 6, and frame 8 (NaN: fail closed)
        outputs.set_state("source-lost")
        assert plc.read("State", "Busy") == ["source-lost", False]
    finally:
        plc.close()
        outputs.stop()
    by_frame = {r["FrameId"]: r for r in plc.received}
    first = by_frame[0]
    assert first["Decision"] == "OK" and first["Score"] == 0.0 and first["Threshold"] == 5.0
    assert first["Model"] == "m" and first["ModelVersion"] == 2 and first["Time"].tzinfo is not None
    assert by_frame[6]["Decision"] == "NG"
    assert by_frame[8]["Decision"] == "NG" and math.isnan(by_frame[8]["Score"]), "a null score is NaN, and never OK"


def test_server_mode_with_ack_off_values_read_back(tmp_path, aio):
    store = ResultsStore(tmp_path / "results.sqlite")
    port = free_port()
    outputs = LineOutputs.open([f"opcua://127.0.0.1:{port}?ack=off"], store, STATION)
    outputs.start()
    plc = Plc(aio, f"opc.tcp://127.0.0.1:{port}")
    try:
        expected = record(store, outputs, 5)
        wait_until(lambda: outputs.status()[0].delivered == 5 and outputs.status()[0].backlog == 0, what="5 verdicts delivered",
                   show=outputs.status)
        assert not outputs.status()[0].alarm
        valid, vid, frame, inspected = plc.read("ResultValid", "VerdictId", "FrameId", "Inspected")
        assert (valid, vid, frame, inspected) == (True, expected[-1], 4, 5), "the last verdict stays on the nodes"
        assert plc.read("Busy", "Ack") == [False, False]

        second = open_sink(f"opcua://127.0.0.1:{port}?ack=off", "line2")  # the port is taken
        second.start()
        try:
            def refused() -> bool:
                try:
                    second.send({"id": "x:1", "decision": "OK", "score": 1.0, "threshold": 2.0}, timeout=0.2)
                except SinkError as e:
                    return f"cannot serve OPC UA on 127.0.0.1:{port}" in str(e)
                return False

            wait_until(refused, timeout=15, what="the taken port as a SinkError")
        finally:
            second.close()
    finally:
        plc.close()
        outputs.stop()


class PlcServer:
    """The PLC's own OPC UA server: a ``Station`` object with the node set in types of its own
    choosing (Score a Float, FrameId an Int32, Inspected a UInt32, no Model) and a ``Trigger``
    flag; keeps every value a client writes, across restarts. With ``acking`` it plays the PLC's
    part of the handshake itself."""

    TYPES = {"Decision": ua.VariantType.String, "Score": ua.VariantType.Float, "Threshold": ua.VariantType.Double,
             "ModelVersion": ua.VariantType.Int32, "FrameId": ua.VariantType.Int32, "VerdictId": ua.VariantType.String,
             "Time": ua.VariantType.DateTime, "Inspected": ua.VariantType.UInt32, "NG": ua.VariantType.UInt64,
             "Errors": ua.VariantType.UInt64, "State": ua.VariantType.String, "ResultValid": ua.VariantType.Boolean,
             "Ack": ua.VariantType.Boolean, "Busy": ua.VariantType.Boolean, "Trigger": ua.VariantType.Boolean}

    def __init__(self, aio: Aio, acking: bool = False) -> None:
        self.aio, self.port, self.acking = aio, free_port(), acking
        self.writes: list[tuple[str, Any]] = []
        self.acked: list[str] = []
        self.server: Server | None = None
        self.nodes: dict[str, Any] = {}
        self._task: asyncio.Future | None = None

    async def _start(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{self.port}")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace("urn:plc")
        station = await server.nodes.objects.add_object(ua.NodeId("Station", ns), ua.QualifiedName("Station", ns))
        await station.add_folder(ua.NodeId("Station.Diagnostics", ns), ua.QualifiedName("Diagnostics", ns))  # not a variable: ignored
        zero = {ua.VariantType.String: "", ua.VariantType.DateTime: dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc), ua.VariantType.Boolean: False}
        names: dict[ua.NodeId, str] = {}
        for name, vtype in self.TYPES.items():
            node = await station.add_variable(ua.NodeId(f"Station.{name}", ns), ua.QualifiedName(name, ns), zero.get(vtype, 0), vtype)
            await node.set_writable()
            self.nodes[name] = node
            names[node.nodeid] = name

        def on_write(event: Any, dispatcher: Any) -> None:
            if event.is_external:
                for wv, status in zip(event.request_params.NodesToWrite, event.response_params):
                    if status.is_good() and wv.NodeId in names:
                        self.writes.append((names[wv.NodeId], wv.Value.Value.Value))

        server.subscribe_server_callback(CallbackType.PostWrite, on_write)
        await server.start()
        self.server = server

    async def _ack_cycle(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            valid, ack, vid = [await self.nodes[n].read_value() for n in ("ResultValid", "Ack", "VerdictId")]
            if valid and not ack:
                self.acked.append(vid)
                await self.nodes["Ack"].write_value(True)
            await asyncio.sleep(0.02)

    def start(self) -> PlcServer:
        self.aio.run(self._start())
        if self.acking:
            self._task = asyncio.run_coroutine_threadsafe(self._ack_cycle(), self.aio.loop)
        return self

    def stop_acking(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def stop(self) -> None:
        self.stop_acking()
        if self.server is not None:
            self.aio.run(self._stop(self.server))
        self.server = None

    @staticmethod
    async def _stop(server: Server) -> None:
        # stop listening first: inspector connecting again while stop() closes the connections
        # would keep stop() waiting for that new one (asyncio's wait_closed)
        server.bserver._server.close()
        await server.stop()

    def value(self, name: str) -> Any:
        return self.aio.run(self.nodes[name].read_value())

    def set(self, name: str, value: Any) -> None:
        self.aio.run(self.nodes[name].write_value(ua.Variant(value, self.TYPES[name])))

    def ids(self) -> list[str]:
        return [v for n, v in list(self.writes) if n == "VerdictId"]


def test_client_mode_writes_into_the_plcs_server_and_nothing_is_lost_when_it_restarts(tmp_path, aio):
    store = ResultsStore(tmp_path / "results.sqlite")
    plc = PlcServer(aio).start()
    outputs = LineOutputs.open([f"opcua+client://127.0.0.1:{plc.port}/?root=nsu=urn:plc;s=Station"], store, STATION)
    outputs.start()
    try:
        wait_until(lambda: plc.value("State") == "ready", what="the station's state on the PLC's server")
        plc.set("Trigger", True)  # the PLC asks for a part
        wait_until(lambda: outputs.gate.pulled == 1 and plc.value("Trigger") is False and plc.value("Busy") is True, what="the trigger taken")
        expected = record(store, outputs, 5)
        wait_until(lambda: plc.ids() == expected, what="the first 5 verdicts", show=plc.ids)
        assert plc.value("Busy") is False and plc.value("ResultValid") is True
        assert (plc.value("Score"), plc.value("FrameId"), plc.value("Inspected"), plc.value("NG")) == (4.0, 4, 5, 0)

        expected += record(store, outputs, 20, start=5)
        wait_until(lambda: len(plc.ids()) >= 8, what="the next verdicts to be flowing")
        plc.stop()  # mid-run: a few of these 20 written, the rest waiting
        expected += record(store, outputs, 5, start=25)
        wait_until(lambda: outputs.status()[0].alarm, what="the lost server as an alarm", show=outputs.status)
        assert outputs.status()[0].backlog > 0
        plc.start()  # a fresh server on the same port: an empty node set
        wait_until(lambda: in_order_once(plc.ids()) == expected, timeout=30, what="all 30 verdicts after the restart",
                   show=lambda: f"{plc.ids()} {outputs.status()}")
        wait_until(lambda: outputs.status()[0].backlog == 0 and not outputs.status()[0].alarm, what="the alarm to clear")
        assert collapsed(plc.ids()) == expected, "in order: a verdict is only ever written again straight after itself"
        assert plc.value("VerdictId") == expected[-1] and plc.value("FrameId") == 29 and plc.value("Decision") == "OK"
        assert plc.value("State") == "ready"
        outputs.stop()
        assert plc.value("State") == "offline", "said on a clean stop"
    finally:
        outputs.stop()
        plc.stop()


def test_client_mode_with_the_ack_handshake(tmp_path, aio):
    store = ResultsStore(tmp_path / "results.sqlite")
    plc = PlcServer(aio, acking=True).start()
    outputs = LineOutputs.open([f"opcua+client://127.0.0.1:{plc.port}?root=ns=2;s=Station&ack=on&ack_timeout=0.5"], store, STATION)
    outputs.start()
    try:
        expected = record(store, outputs, 4)
        wait_until(lambda: outputs.status()[0].backlog == 0 and outputs.status()[0].delivered == 4, what="4 verdicts acknowledged")
        assert plc.acked == expected and in_order_once(plc.ids()) == expected
        wait_until(lambda: plc.value("ResultValid") is False and plc.value("Ack") is False, what="the handshake to end")

        plc.stop_acking()  # the PLC stops acknowledging
        late = record(store, outputs, 1, start=4)
        wait_until(lambda: "no ack from the PLC" in outputs.status()[0].alarm, what="the missing ack as an alarm")
        assert plc.value("VerdictId") == late[0] and plc.value("ResultValid") is True
        plc.set("Ack", True)  # late, but for the verdict still presented: it counts
        wait_until(lambda: outputs.status()[0].backlog == 0 and not outputs.status()[0].alarm, what="the late ack taken")
    finally:
        outputs.stop()
        plc.stop()


@pytest.mark.parametrize("url, message", [
    ("opcua:///x", "names no host"),
    ("opcua://127.0.0.1:99999", "port"),
    ("opcua://127.0.0.1?ack=maybe", "ack must be on or off"),
    ("opcua://127.0.0.1?ack_timeout=0", "ack_timeout must be"),
    ("opcua://127.0.0.1?ack_timeout=601", "ack_timeout must be"),
    ("opcua://127.0.0.1?ack_timeout=soon", "ack_timeout must be"),
    ("opcua://127.0.0.1?ack_timeout=nan", "ack_timeout must be"),
    ("opcua://127.0.0.1?ack_timout=2", "unknown option 'ack_timout'"),
    ("opcua://plc:secret@127.0.0.1", "no user name"),
    ("opcua+client://127.0.0.1:4840/", "names no node"),
    ("opcua+client://127.0.0.1:4840/?root=", "names no node"),
    ("opcua+client://127.0.0.1:4840/?root=Station", "not an OPC UA node id"),
    ("opcua+client://127.0.0.1:4840/?root=ns=x;s=Station", "not an OPC UA node id"),
])
def test_a_bad_opcua_address_is_one_line(url, message):
    with pytest.raises(ValueError, match=message) as caught:
        open_sink(url, STATION)
    assert "\n" not in str(caught.value)


def test_a_send_before_the_server_is_reachable_is_a_sink_error_and_close_is_bounded():
    sink = open_sink(f"opcua+client://127.0.0.1:{free_port()}/?root=ns=2;s=Station", STATION)
    sink.start()
    started = time.monotonic()
    try:
        with pytest.raises(SinkError, match="not reached"):
            sink.send({"id": "x:1", "decision": "OK", "score": 1.0, "threshold": 2.0}, timeout=0.5)
    finally:
        sink.close()
    assert time.monotonic() - started < 5


def test_values_fit_the_types_a_plc_declares():
    from inspector.engine.sinks.message import test_verdict
    from inspector.engine.sinks.opcua import convert, same, verdict_values

    vt = ua.VariantType
    assert convert(-1, vt.UInt32) == 2**32 - 1 and convert(2**31, vt.Int32) == -2**31, "an integer wraps, as a PLC counter does"
    assert convert(-1, vt.Int64) == -1 and convert(3, vt.Float) == 3.0 and convert(True, vt.Boolean) is True
    with pytest.raises(ValueError):
        convert(float("nan"), vt.Int32)
    values = verdict_values(test_verdict(STATION))  # frame -1, no score: must still encode in every declared type
    assert values["FrameId"] == -1 and math.isnan(values["Score"]) and values["Decision"] == "NG"
    assert convert(values["Time"], vt.String).endswith("Z")
    assert same(math.nan, math.nan, vt.Double) and same(0.1, float(convert(0.1, vt.Float)), vt.Float)
    assert not same(0.1, 0.2, vt.Double) and not same("OK", "NG", vt.String)
