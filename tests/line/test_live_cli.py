"""``inspector live`` with line outputs, as a line PC runs it: a simulated line, a real Mosquitto
and an HTTP receiver; inspector is killed (-9) mid-run with both receivers down, started again,
and every stored verdict reaches each sink, in order, once per id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from inspector.engine.results_store import ResultsStore
from inspector.engine.station import Station
from tests.line.servers import Subscriber, in_order_once, wait_until

TOPIC = "plant/line1"
LIVE = [sys.executable, "-c", "from inspector.cli import main; raise SystemExit(main())", "live"]


@pytest.fixture
def model(tmp_home, parts_dir):
    from inspector.cli import main

    assert main(["train", str(parts_dir), "--method", "padim", "--image-size", "32", "--name", "cells", "--device", "cpu"]) == 0
    return "cells"


def test_kill_9_mid_run_loses_no_verdict_at_any_sink(tmp_path, model, parts_dir, broker, receiver):
    db = tmp_path / "results.sqlite"
    station = Station(name="line1", source=f"sim:{parts_dir}", model=model, fps=20.0,
                      sinks=[f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", receiver.url]).save(tmp_path / "line1.toml")
    subscriber = Subscriber(broker.port, TOPIC)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([*LIVE, "--station", str(station), "--db", str(db), "--stats-every", "0", "--device", "cpu"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len(receiver.ids()) >= 10 or first.poll() is not None, timeout=120, what="the first verdicts")
        assert first.poll() is None, first.stderr.read()
        receiver.failing = True  # both receivers down: verdicts pile up in the outbox
        broker.stop()
        stored_before = len(receiver.ids())
        wait_until(lambda: ResultsStore(db, readonly=True).count()["total"] >= stored_before + 10, what="a backlog")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)

    broker.start()
    receiver.failing = False
    second = subprocess.run([*LIVE, "--station", str(station), "--db", str(db), "--max-frames", "5", "--stats-every", "0",
                             "--device", "cpu", "--sink-drain", "60"], env=env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr
    store = ResultsStore(db, readonly=True)
    rows = sorted(r.id for r in store.query(newest_first=False))
    expected = [f"{store.store_id}:{i}" for i in rows]
    assert len(rows) >= stored_before + 15
    wait_until(lambda: in_order_once(subscriber.ids()) == expected, what="every verdict over MQTT",
               show=lambda: f"{len(in_order_once(subscriber.ids()))} of {len(expected)}")
    subscriber.close()
    assert in_order_once(receiver.ids()) == expected, "every verdict at the webhook, in order"
    assert {b["station"] for b in receiver.bodies} == {"line1"}


def test_a_verdict_the_full_disk_could_not_keep_still_reaches_the_line_as_ng(tmp_path, model, parts_dir, receiver):
    """A real 'disk full' (RLIMIT_FSIZE, as tests/test_hostile_storage.py): every frame's verdict
    reaches the webhook, the stored ones from the outbox, the others from memory, as NG."""
    import textwrap

    script = textwrap.dedent("""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (160_000, 160_000))
        from inspector.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    db = tmp_path / "full.sqlite"
    done = subprocess.run([sys.executable, "-c", script, "live", "--source", f"sim:{parts_dir}", "--fps", "20", "--model", model,
                           "--db", str(db), "--max-frames", "40", "--save-ok-every", "1", "--stats-every", "0", "--device", "cpu",
                           "--sink", receiver.url, "--sink-drain", "30"],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=180)
    assert "results NOT stored" in done.stderr, done.stderr
    bodies = receiver.bodies
    unstored = [b for b in bodies if not b["stored"]]
    stored_rows = ResultsStore(db, readonly=True).count()["total"]
    assert unstored and all(b["decision"] in ("NG", "ERROR") and b["error"] for b in unstored)
    assert len(in_order_once([b["id"] for b in bodies])) == 40 and len(bodies) - len(unstored) == stored_rows


class _Plc(threading.Thread):
    """A PLC that reads and acks every verdict of inspector's Modbus or OPC UA server, reconnecting
    when the server goes away; ``acking`` cleared: it stops acknowledging (verdicts pile up)."""

    def __init__(self, protocol: str, port: int, station: str) -> None:
        super().__init__(daemon=True)
        self.protocol, self.port, self.station = protocol, port, station
        self.seen: list[tuple] = []
        self.acking, self.stop = threading.Event(), threading.Event()
        self.acking.set()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                (self._modbus if self.protocol == "modbus" else self._opcua)()
            except Exception:  # noqa: BLE001 — the server went away (inspector killed): connect again
                self.stop.wait(0.2)

    def _modbus(self) -> None:
        from pymodbus.client import ModbusTcpClient

        from inspector.engine.sinks.modbus import C_ACK, N_COILS, N_REGISTERS, decode

        client = ModbusTcpClient("127.0.0.1", port=self.port, timeout=1, retries=0)
        if not client.connect():
            raise ConnectionError("no server")
        last = None
        try:
            while not self.stop.is_set():
                if self.acking.is_set():
                    v = decode(client.read_coils(0, count=N_COILS).bits, client.read_holding_registers(0, count=N_REGISTERS).registers)
                    if v["result_valid"] and not v["ack"]:  # presented and not acked: read it (if new) and ack
                        if v["sequence"] != last:
                            self.seen.append((v["frame"], v["score"]))
                        client.write_coil(C_ACK, True)
                        last = v["sequence"]
                self.stop.wait(0.01)
        finally:
            client.close()

    def _opcua(self) -> None:
        from asyncua import ua
        from asyncua.sync import Client

        client = Client(f"opc.tcp://127.0.0.1:{self.port}", timeout=2)
        client.connect()
        try:
            index = client.get_namespace_index("urn:inspector:station")
            names = ("ResultValid", "Ack", "VerdictId")
            nodes = [client.get_node(f"ns={index};s={self.station}.{n}") for n in names]
            while not self.stop.is_set():
                if self.acking.is_set():
                    valid, ack, verdict_id = client.read_values(nodes)
                    if valid and not ack:  # presented and not acked (again, after a restart): read it if new, ack it
                        if not self.seen or self.seen[-1] != verdict_id:
                            self.seen.append(verdict_id)
                        nodes[1].write_value(ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))
                self.stop.wait(0.01)
        finally:
            client.disconnect()


def test_kill_9_mid_run_loses_no_verdict_at_the_plc_over_opcua_and_modbus(tmp_path, model, parts_dir):
    from tests.line.servers import free_port

    db = tmp_path / "results.sqlite"
    modbus_port, opcua_port = free_port(), free_port()
    station = Station(name="line1", source=f"sim:{parts_dir}", model=model, fps=20.0,
                      sinks=[f"modbus://127.0.0.1:{modbus_port}", f"opcua://127.0.0.1:{opcua_port}"]).save(tmp_path / "line1.toml")
    plcs = [_Plc("modbus", modbus_port, "line1"), _Plc("opcua", opcua_port, "line1")]
    for plc in plcs:
        plc.start()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = [*LIVE, "--station", str(station), "--db", str(db), "--stats-every", "0", "--device", "cpu"]
    first = subprocess.Popen(run, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: all(len(p.seen) >= 10 for p in plcs) or first.poll() is not None, timeout=120, what="acked verdicts")
        assert first.poll() is None, first.stderr.read()
        for plc in plcs:
            plc.acking.clear()  # the PLCs stop acking: verdicts wait in the outbox
        before = ResultsStore(db, readonly=True).count()["total"]
        wait_until(lambda: ResultsStore(db, readonly=True).count()["total"] >= before + 10, what="a backlog")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    for plc in plcs:
        plc.acking.set()
    second = subprocess.run([*run, "--max-frames", "5", "--sink-drain", "60"], env=env, capture_output=True, text=True, timeout=180)
    for plc in plcs:
        plc.stop.set()
        plc.join(10)
    assert second.returncode == 0, second.stderr
    store = ResultsStore(db, readonly=True)
    rows = store.query(newest_first=False)
    modbus, opcua = plcs
    # a verdict whose ack was not recorded before the kill is presented again, right after itself
    collapsed = [v for i, v in enumerate(modbus.seen) if i == 0 or v != modbus.seen[i - 1]]
    assert collapsed == [(r.frame_id, float(np.float32(r.score))) for r in rows], "every verdict at the Modbus PLC, in order"
    assert opcua.seen == [f"{store.store_id}:{r.id}" for r in rows], "every verdict at the OPC UA PLC, in order, once"
