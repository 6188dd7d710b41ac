"""Modbus TCP line output against real pymodbus peers on 127.0.0.1 started here: a PLC program
over a pymodbus client (server mode: the trigger, busy, result_valid and ack handshake), and a
pymodbus server standing in for the PLC's memory (client mode), stopped and started again mid-run.
Every loop is bounded in count and time."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import threading
import time

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from inspector.engine.results_store import ResultsStore
from inspector.engine.sinks import LineOutputs, SinkError, open_sink
from inspector.engine.sinks.modbus import C_ACK, C_TRIGGER, N_COILS, N_REGISTERS, REGISTERS, decode
from tests.line.servers import free_port, in_order_once, wait_until

WAIT_S = 10.0


def f32(x: float) -> float:
    """What a float32 register pair holds of ``x``."""
    return struct.unpack(">f", struct.pack(">f", x))[0]


def record(store: ResultsStore, outputs: LineOutputs, n: int, start: int = 0) -> list[int]:
    """n results, committed one by one as the live loop does; every 4th NG, the 7th an ERROR."""
    ids = []
    for i in range(start, start + n):
        error = "model failed" if i == 6 else None
        ids.append(store.record(source="test", frame_id=1000 + i, model="m", model_version=2,
                                score=float("nan") if error else 0.37 * i, threshold=1.5,
                                decision="NG" if error or i % 4 == 3 else "OK", rule="score", error=error))
        outputs.stored()
    return ids


class Plc:
    """A PLC program over a real pymodbus client: polls the map every 10 ms, keeps each verdict
    once (by its sequence number) while result_valid is 1, and acks it unless ``hold`` is set."""

    def __init__(self, port: int, unit: int = 1, coils: int = 0, registers: int = 0, words: str = "big") -> None:
        self.unit, self.coils, self.registers, self.words = unit, coils, registers, words
        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        self.lock = threading.Lock()
        self.seen: list[dict] = []
        self.hold = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Plc:
        self._thread.start()
        return self

    def read(self) -> dict:
        with self.lock:
            coils = self.client.read_coils(self.coils, count=N_COILS, device_id=self.unit)
            registers = self.client.read_holding_registers(self.registers, count=N_REGISTERS, device_id=self.unit)
        if coils.isError() or registers.isError():
            raise ModbusException(f"read refused: {coils}, {registers}")
        return decode(coils.bits[:N_COILS], registers.registers, self.words)

    def write_coil(self, offset: int, value: bool) -> None:
        with self.lock:
            response = self.client.write_coil(self.coils + offset, value, device_id=self.unit)
        if response.isError():
            raise ModbusException(f"write refused: {response}")

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                v = self.read()
                if v["result_valid"] and (not self.seen or self.seen[-1]["sequence"] != v["sequence"]):
                    self.seen.append(v)
                if v["result_valid"] and not self.hold.is_set():
                    self.write_coil(C_ACK, True)
            except (ModbusException, OSError):
                with self.lock:
                    self.client.close()  # inspector not up yet, or restarting: connect again next time
            self._stop.wait(0.01)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.client.close()


class PlcMemory:
    """A pymodbus server standing in for a PLC's memory (client mode), on its own thread and loop.
    Every start is a fresh memory, as after a PLC restart; ``frames`` keeps, across restarts, the
    frame of every verdict written into it (a register write of the whole map)."""

    def __init__(self, unit: int, coils: int, registers: int) -> None:
        self.unit, self.coils, self.registers = unit, coils, registers
        self.port = free_port()
        self.frames: list[int] = []
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> PlcMemory:
        self._stopping.clear()
        listening = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(listening)), daemon=True)
        self._thread.start()
        assert listening.wait(WAIT_S), f"the test's Modbus server on port {self.port} did not start"
        return self

    async def _serve(self, listening: threading.Event) -> None:
        bits = [SimData(self.coils, values=[False] * 16, datatype=DataType.BITS)]
        words = [SimData(self.registers, count=N_REGISTERS, datatype=DataType.REGISTERS)]
        device = SimDevice(self.unit, simdata=(bits, [SimData(0, values=[False] * 16, datatype=DataType.BITS)], words,
                                               [SimData(0, datatype=DataType.REGISTERS)]), action=self._action)
        server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await server.serve_forever(background=True)
        listening.set()
        deadline = time.monotonic() + 120
        while not self._stopping.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await server.shutdown()

    async def _action(self, function_code, start_address, address, count, current, values):
        if function_code == 16 and address == self.registers and values is not None and len(values) == N_REGISTERS:
            written = decode([False] * N_COILS, list(values))
            if written["sequence"]:  # 0: inspector's image before its first verdict
                self.frames.append(written["frame"])
        return None

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(WAIT_S)


def test_server_mode_a_plc_gets_every_verdict_in_order_once_through_the_handshake_and_a_withheld_ack(tmp_path):
    port = free_port()
    store = ResultsStore(tmp_path / "results.sqlite")
    outputs = LineOutputs.open([f"modbus://127.0.0.1:{port}?unit=3&ack_timeout=0.4"], store, "line1")
    sink = outputs.deliveries[0].sink
    triggers: list[float] = []
    sink.on_trigger = lambda: triggers.append(time.monotonic())
    started = time.monotonic()
    outputs.start()
    assert time.monotonic() - started < 1.0, "start() returns at once"
    plc = Plc(port, unit=3)
    try:
        wait_until(lambda: _reads(plc), timeout=WAIT_S, what="inspector's Modbus server")
        idle = plc.read()
        assert idle["ready"] and not idle["busy"] and not idle["result_valid"] and idle["sequence"] == 0 and idle["state"] == "ready"
        with plc.lock:
            other = plc.client.read_coils(0, count=N_COILS, device_id=1)
        assert other.isError() and other.exception_code == 11, "another unit id: 'gateway target failed to respond'"

        plc.write_coil(C_TRIGGER, True)  # the PLC asks for a part
        wait_until(lambda: len(triggers) == 1, timeout=WAIT_S, what="the trigger hook")
        taken = plc.read()
        assert taken["busy"] and not taken["ready"] and not taken["trigger"], "taken: busy set, trigger cleared by inspector"

        plc.hold.set()  # the PLC does not ack the first verdict for a while
        plc.start()
        expected = record(store, outputs, 8)
        wait_until(lambda: outputs.status()[0].alarm, timeout=WAIT_S, what="the missing ack as the sink's alarm")
        status = outputs.status()[0]
        assert "no ack from the PLC within 0.4 s" in status.last_error and status.backlog == 8
        wait_until(lambda: len(plc.seen) == 1, timeout=WAIT_S,
                   what="the first verdict presented")
        time.sleep(1.0)  # several retries: the same verdict stays presented, nothing after it
        assert [v["frame"] for v in plc.seen] == [1000] and plc.seen[0]["sequence"] == 1 and plc.read()["result_valid"]

        plc.hold.clear()
        wait_until(lambda: len(plc.seen) == 8 and outputs.status()[0].backlog == 0 and not outputs.status()[0].alarm,
                   timeout=WAIT_S, what="all 8 verdicts acked", show=lambda: f"{[v['frame'] for v in plc.seen]} {outputs.status()}")
        done = plc.read()
        assert done["ready"] and not done["busy"] and not done["result_valid"] and not done["ack"], "after the ack: ready again"
    finally:
        plc.stop()
        outputs.stop()
    assert len(expected) == 8
    assert [v["frame"] for v in plc.seen] == [1000 + i for i in range(8)], "every verdict, in order, once"
    assert [v["sequence"] for v in plc.seen] == list(range(1, 9))
    assert [v["inspected"] for v in plc.seen] == list(range(1, 9))
    for i, v in enumerate(plc.seen):
        assert v["threshold"] == 1.5 and v["version"] == 2 and v["busy"] and v["state"] == "ready"
        if i == 6:  # not judged: NG and error, the score is null (NaN)
            assert v["error"] and v["ng"] and not v["ok"] and v["score"] is None
        else:
            assert v["score"] == f32(0.37 * i), "the float32 score decodes to the stored score"
            assert v["ng"] == (i % 4 == 3) and v["ok"] == (i % 4 != 3) and not v["error"]
    assert plc.seen[-1]["ng_count"] == 3 and plc.seen[-1]["errors"] == 1  # frames 3 and 7 NG, 6 ERROR (rejected too)
    assert not _reads(plc), "closed: the server stopped"


def _reads(plc: Plc) -> bool:
    try:
        plc.read()
        return True
    except (ModbusException, OSError):
        with plc.lock:
            plc.client.close()
        return False


def test_server_mode_with_ack_off_needs_no_plc_and_the_values_read_back(tmp_path):
    port = free_port()
    store = ResultsStore(tmp_path / "results.sqlite")
    url = f"modbus://127.0.0.1:{port}?ack=off&words=little&coils=21&registers=100"
    outputs = LineOutputs.open([url], store, "line1")
    outputs.start()
    plc = Plc(port, unit=1, coils=21, registers=100, words="little")
    try:
        record(store, outputs, 7)  # the 7th (frame 1006) is an ERROR
        assert outputs.drain(WAIT_S), outputs.status()
        last = plc.read()
        assert last["frame"] == 1006 and last["sequence"] == 7 and last["inspected"] == 7 and last["errors"] == 1
        assert last["ng_count"] == 2 and last["error"] and last["ng"] and last["score"] is None and last["threshold"] == 1.5
        assert last["result_valid"] and last["ready"] and not last["busy"], "ack off: result_valid stays, the sequence tells verdicts apart"
        raw = plc.client.read_holding_registers(100 + REGISTERS["threshold"], count=2, device_id=1).registers
        assert struct.unpack(">f", struct.pack(">HH", raw[1], raw[0]))[0] == 1.5, "?words=little: the low word first"
        low, high = plc.client.read_holding_registers(100, count=2, device_id=1).registers
        assert (high, low) == (0x7FC0, 0) and math.isnan(struct.unpack(">f", struct.pack(">HH", high, low))[0]), "null: NaN"
        assert plc.client.read_input_registers(100, count=N_REGISTERS, device_id=1).registers == \
            plc.client.read_holding_registers(100, count=N_REGISTERS, device_id=1).registers, "the same map as input registers"
        assert plc.client.write_register(100, 7, device_id=1).isError(), "the registers are inspector's"
        assert plc.client.write_coil(21, True, device_id=1).isError(), "so are all coils but ack and trigger"
        assert plc.client.read_holding_registers(100 + N_REGISTERS, count=1, device_id=1).isError(), "nothing beyond the map"
        outputs.set_state("source-lost")
        state = plc.read()
        assert state["state"] == "source-lost" and not state["ready"]
    finally:
        plc.stop()
        outputs.stop()


def test_client_mode_writes_into_the_plc_and_loses_nothing_when_the_plc_restarts(tmp_path):
    memory = PlcMemory(unit=2, coils=100, registers=200).start()
    store = ResultsStore(tmp_path / "results.sqlite")
    outputs = LineOutputs.open([f"modbus+client://127.0.0.1:{memory.port}?unit=2&coils=100&registers=200"], store, "line1")
    outputs.start()
    try:
        expected = [1000 + i for i in range(5)]
        record(store, outputs, 5)
        wait_until(lambda: in_order_once(memory.frames) == expected and outputs.status()[0].backlog == 0, timeout=WAIT_S,
                   what="the first 5 verdicts in the PLC", show=lambda: f"{memory.frames} {outputs.status()}")

        memory.stop()  # the PLC restarts: connection gone, then a fresh memory on the same port
        record(store, outputs, 5, start=5)
        expected += [1000 + i for i in range(5, 10)]
        wait_until(lambda: outputs.status()[0].alarm, timeout=WAIT_S, what="the PLC down as the sink's alarm")
        memory.start()
        wait_until(lambda: in_order_once(memory.frames) == expected and outputs.status()[0].backlog == 0
                   and not outputs.status()[0].alarm, timeout=20, what="all 10 verdicts after the restart",
                   show=lambda: f"{memory.frames} {outputs.status()}")
        plc = Plc(memory.port, unit=2, coils=100, registers=200)
        try:
            now = plc.read()
        finally:
            plc.stop()
        assert now["frame"] == 1009 and now["sequence"] == 10 and now["inspected"] == 10 and now["result_valid"]
        assert now["score"] == f32(0.37 * 9) and now["state"] == "ready"
    finally:
        outputs.stop()
        memory.stop()


def test_client_mode_with_the_ack_handshake_and_a_trigger_polled_from_the_plc(tmp_path):
    memory = PlcMemory(unit=1, coils=100, registers=200).start()
    store = ResultsStore(tmp_path / "results.sqlite")
    url = f"modbus+client://127.0.0.1:{memory.port}?coils=100&registers=200&ack=on&ack_timeout=2&poll=0.05"
    outputs = LineOutputs.open([url], store, "line1")
    sink = outputs.deliveries[0].sink
    triggers: list[float] = []
    sink.on_trigger = lambda: triggers.append(time.monotonic())
    outputs.start()
    plc = Plc(memory.port, unit=1, coils=100, registers=200)
    try:
        wait_until(lambda: _reads(plc) and plc.read()["ready"], timeout=WAIT_S, what="inspector's image in the PLC")
        plc.write_coil(C_TRIGGER, True)
        wait_until(lambda: len(triggers) == 1, timeout=WAIT_S, what="the polled trigger")
        wait_until(lambda: (lambda v: v["busy"] and not v["trigger"])(plc.read()), timeout=WAIT_S, what="busy, trigger cleared")
        plc.start()
        record(store, outputs, 4)
        wait_until(lambda: len(plc.seen) == 4 and outputs.status()[0].backlog == 0, timeout=WAIT_S, what="4 verdicts acked",
                   show=lambda: f"{[v['frame'] for v in plc.seen]} {outputs.status()}")
        wait_until(lambda: (lambda v: v["ready"] and not v["result_valid"] and not v["ack"])(plc.read()), timeout=WAIT_S,
                   what="ready again, result_valid and ack cleared")
    finally:
        plc.stop()
        outputs.stop()
        memory.stop()
    assert [v["frame"] for v in plc.seen] == [1000, 1001, 1002, 1003] and [v["sequence"] for v in plc.seen] == [1, 2, 3, 4]


def test_server_mode_on_a_taken_port_is_a_sink_error_until_the_port_is_free():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    sink = open_sink(f"modbus://127.0.0.1:{port}?ack=off", "s")
    message = {"id": "t:1", "decision": "OK", "score": 0.5, "threshold": 1.0, "frame": 1, "version": 1}
    errors: list[str] = []

    def sent() -> bool:
        try:
            sink.send(message, 1.0)
            return True
        except SinkError as e:
            errors.append(str(e))
            return False

    sink.start()
    try:
        wait_until(lambda: not sent() and "cannot listen" in errors[-1], timeout=WAIT_S, what="the taken port as a SinkError")
        assert "\n" not in errors[-1]
        taken.close()
        wait_until(sent, timeout=WAIT_S, what="serving once the port is free (tried again every second)")
    finally:
        sink.close()
        taken.close()


@pytest.mark.parametrize("url, message", [
    ("modbus:///", "names no host"),
    ("modbus://127.0.0.1:99999", "port"),
    ("modbus://127.0.0.1/verdicts", "no path"),
    ("modbus://127.0.0.1?unit=300", "unit"),
    ("modbus://127.0.0.1?unit=one", "unit"),
    ("modbus://127.0.0.1?ack=maybe", "ack"),
    ("modbus://127.0.0.1?ack_timeout=0", "ack_timeout"),
    ("modbus://127.0.0.1?ack_timeout=nan", "ack_timeout"),
    ("modbus://127.0.0.1?words=middle", "words"),
    ("modbus://127.0.0.1?registers=65530", "registers"),
    ("modbus://127.0.0.1?poll=1", "unknown option 'poll'"),
    ("modbus+client://127.0.0.1?coils=-1", "coils"),
    ("modbus+client://127.0.0.1?poll=0.001", "poll"),
    ("modbus+client://user:pw@127.0.0.1", "no user"),
    ("modbus+client://127.0.0.1?unti=2", "unknown option 'unti'"),
])
def test_a_bad_modbus_address_is_a_one_line_value_error(url, message):
    with pytest.raises(ValueError, match=message) as caught:
        open_sink(url, "s")
    assert "\n" not in str(caught.value)
