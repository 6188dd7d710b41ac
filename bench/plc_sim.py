"""A simulated PLC: triggers parts at a set rate, reads each verdict, acknowledges it and checks it
against the known answer (the part's folder under a simulated line: ``good/…`` should be OK,
anything else NG), over MQTT, OPC UA or Modbus TCP; prints and stores what it saw. With
``--protocol http`` it is the plant's side of a webhook instead: it listens on the address, takes
the verdicts POSTed to it (2xx) and triggers nothing.

    inspector live --station line1.toml &        # trigger = "line", with the matching sink
    python bench/plc_sim.py --protocol opcua --address 127.0.0.1:4840 --parts 100 --rate 5
    python bench/plc_sim.py --protocol modbus --address 127.0.0.1:5020 --parts 100 --rate 5
    python bench/plc_sim.py --protocol mqtt --address 127.0.0.1:1883 --topic plant/line1 --parts 100 --rate 5
    python bench/plc_sim.py --protocol http --address 127.0.0.1:8080 --parts 100      # sink http://127.0.0.1:8080/verdicts

Every wait is bounded (``--timeout`` per verdict); only the given address is contacted.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, default_out, write_results


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", choices=("mqtt", "opcua", "modbus", "http"), required=True)
    parser.add_argument("--address", required=True, help="HOST:PORT of the broker (mqtt) or of inspector's server")
    parser.add_argument("--topic", default="inspector/station", help="mqtt: the station's topic (default inspector/station)")
    parser.add_argument("--station", default="station", help="opcua: the station's object name (default station)")
    parser.add_argument("--unit", type=int, default=1, help="modbus: unit id (default 1)")
    parser.add_argument("--parts", type=int, default=50, help="parts to trigger (default 50)")
    parser.add_argument("--rate", type=float, default=2.0, help="parts per second at most (default 2)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each verdict (default 10)")
    parser.add_argument("--db", type=Path, default=None,
                        help="inspector's results database: each verdict is checked against its stored row (and the part's name "
                             "there gives the known answer where the protocol carries no name, as Modbus)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file (default bench/out/plc_sim-<time>.json)")
    return parser.parse_args(argv)


def expected(frame_name: str) -> str | None:
    """The known answer of a simulated line's part: its top folder (None when it has none)."""
    top = frame_name.replace("\\", "/").split("/")[0] if "/" in frame_name.replace("\\", "/") else ""
    return None if not top else "OK" if top == "good" else "NG"


class _Queued:
    """A PLC whose verdicts arrive by themselves (a subscription, a POST) into ``verdicts``."""

    verdicts: queue.Queue

    def verdict(self, timeout: float) -> dict | None:
        try:
            return self.verdicts.get(timeout=timeout)
        except queue.Empty:
            return None


class MqttPlc(_Queued):
    """Triggers on ``<topic>/trigger``; a verdict is a message on ``<topic>`` (PUBACK is the ack)."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.topic, self.verdicts = topic, queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"plc-sim-{time.time_ns()}")
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_message = lambda c, u, msg: self.verdicts.put(json.loads(msg.payload))
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        time.sleep(0.5)  # subscribed before the first trigger

    def trigger(self) -> None:
        self.client.publish(f"{self.topic}/trigger", b"{}", qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class OpcUaPlc:
    """Calls ``Trigger()``, waits for ``ResultValid``, reads the verdict, writes ``Ack``
    (``docs/line-outputs/opcua.md``), through asyncua's synchronous client."""

    def __init__(self, host: str, port: int, station: str) -> None:
        from asyncua import ua
        from asyncua.sync import Client

        self.ua = ua
        self.client = Client(f"opc.tcp://{host}:{port}", timeout=5)
        self.client.connect()
        index = self.client.get_namespace_index("urn:inspector:station")
        self.names = ("ResultValid", "Ack", "VerdictId", "Decision", "Score", "FrameId")
        self.node = {name: self.client.get_node(f"ns={index};s={station}.{name}") for name in self.names}
        self.last: str | None = None  # the verdict acknowledged last (presented again after a restart: acked, not counted)
        self.station = self.client.get_node(f"ns={index};s={station}")
        self.trigger_method = self.station.get_child(f"{index}:Trigger")

    def trigger(self) -> None:
        self.station.call_method(self.trigger_method)

    def verdict(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # one Read request: the flags and the values of one and the same verdict
            v = dict(zip(self.names, self.client.read_values([self.node[n] for n in self.names])))
            if v["ResultValid"] and not v["Ack"]:  # presented, not acked: ack it (again after a restart)
                self.node["Ack"].write_value(self.ua.DataValue(self.ua.Variant(True, self.ua.VariantType.Boolean)))
                if v["VerdictId"] == self.last:  # presented again: acked, already counted
                    time.sleep(0.01)
                    continue
                self.last = v["VerdictId"]
                score = None if v["Score"] != v["Score"] else v["Score"]
                return {"id": v["VerdictId"], "decision": v["Decision"], "score": score, "frame": v["FrameId"], "frame_name": ""}
            time.sleep(0.01)
        return None

    def close(self) -> None:
        self.client.disconnect()


class WebhookReceiver(_Queued):
    """The plant's HTTP endpoint: every POSTed verdict, answered 204."""

    def __init__(self, host: str, port: int) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        verdicts = self.verdicts = queue.Queue()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                verdicts.put(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def trigger(self) -> None:
        """A webhook takes verdicts; it cannot ask for a part."""

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ModbusPlc:
    """Writes the trigger coil, polls result-valid, reads the verdict registers, writes ack
    (``docs/line-outputs/modbus.md``). Modbus carries no part name, so the verdict's id is its
    sequence number and the known answer comes from ``--db``."""

    def __init__(self, host: str, port: int, unit: int) -> None:
        from pymodbus.client import ModbusTcpClient

        from inspector.engine.sinks.modbus import N_COILS, N_REGISTERS

        self.unit, self.n_coils, self.n_registers = unit, N_COILS, N_REGISTERS
        self.last = 0  # the sequence number acknowledged last (presented again: acked, not counted)
        self.client = ModbusTcpClient(host, port=port, timeout=2, retries=1)
        if not self.client.connect():
            raise SystemExit(f"cannot connect to the Modbus server at {host}:{port}")

    def _read(self) -> dict:
        from inspector.engine.sinks.modbus import decode

        coils = self.client.read_coils(0, count=self.n_coils, device_id=self.unit)
        registers = self.client.read_holding_registers(0, count=self.n_registers, device_id=self.unit)
        if coils.isError() or registers.isError():
            raise RuntimeError(f"Modbus read failed: {coils if coils.isError() else registers}")
        return decode(coils.bits, registers.registers)

    def trigger(self) -> None:
        from inspector.engine.sinks.modbus import C_TRIGGER

        self.client.write_coil(C_TRIGGER, True, device_id=self.unit)

    def verdict(self, timeout: float) -> dict | None:
        from inspector.engine.sinks.modbus import C_ACK

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self._read()
            if v["result_valid"] and not v["ack"]:  # presented, not acked: ack it (again after a restart)
                self.client.write_coil(C_ACK, True, device_id=self.unit)
                if v["sequence"] == self.last:  # presented again: acked, already counted
                    time.sleep(0.01)
                    continue
                self.last = v["sequence"]
                decision = "ERROR" if v["error"] else "NG" if v["ng"] else "OK"
                return {"id": f"sequence {v['sequence']}", "decision": decision, "score": v["score"], "frame": v["frame"], "frame_name": ""}
            time.sleep(0.01)
        return None

    def close(self) -> None:
        self.client.close()


def open_plc(args, wait_s: float = 60.0):
    """The PLC for ``--protocol``, retried for up to ``wait_s`` while the station starts up."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _open_plc(args)
        except (OSError, SystemExit) as e:
            if time.monotonic() > deadline or (isinstance(e, SystemExit) and "must be HOST:PORT" in str(e)):
                raise
            time.sleep(1.0)


def _open_plc(args):
    host, _, port = args.address.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--address must be HOST:PORT, got {args.address!r}")
    if args.protocol == "mqtt":
        return MqttPlc(host, int(port), args.topic)
    if args.protocol == "opcua":
        return OpcUaPlc(host, int(port), args.station)
    if args.protocol == "http":
        return WebhookReceiver(host, int(port))
    return ModbusPlc(host, int(port), args.unit)


def stored_row(store, frame: int):
    """The newest stored result of ``frame`` (a PLC simulator on the station's PC may look)."""
    return next((r for r in store.query(limit=200) if r.frame_id == frame), None)


def main(argv=None) -> int:
    args = parse_args(argv)
    plc = open_plc(args)
    store = None
    if args.db is not None:
        from inspector.engine.results_store import ResultsStore

        store = ResultsStore(args.db, readonly=True)
    latencies, seen, agree, disagree, missing, unknown = [], set(), 0, 0, 0, 0
    duplicates = mismatched = 0
    period = 1.0 / args.rate if args.rate > 0 else 0.0
    try:
        for part in range(args.parts):
            started = time.perf_counter()
            plc.trigger()
            v = plc.verdict(args.timeout)
            if v is None:
                missing += 1
                print(f"part {part}: no verdict within {args.timeout:g} s", flush=True)
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            duplicates += v["id"] in seen
            seen.add(v["id"])
            row = stored_row(store, v["frame"]) if store is not None else None
            if store is not None and (row is None or (row.error and v["decision"] != "ERROR")
                                      or (not row.error and row.decision != v["decision"])):
                mismatched += 1
                print(f"part {part}: the verdict {v['decision']} does not match the stored result {row and row.decision}", flush=True)
            answer = expected(v.get("frame_name") or (row.frame_name if row is not None else ""))
            if answer is None:
                unknown += 1
            elif (v["decision"] == "OK") == (answer == "OK"):
                agree += 1
            else:
                disagree += 1
            print(f"part {part}: {v['decision']:5} score {v['score']} frame {v['frame_name'] or v['frame']} ({latencies[-1]:.0f} ms)", flush=True)
            time.sleep(max(0.0, period - (time.perf_counter() - started)))
    finally:
        plc.close()
    p = np.percentile(latencies, [50, 95, 99]).round(1).tolist() if latencies else [None] * 3
    summary = {"protocol": args.protocol, "parts": args.parts, "verdicts": len(latencies), "missing": missing, "duplicates": duplicates,
               "not_as_stored": mismatched if store is not None else None,
               "agree_with_known_answer": agree, "disagree": disagree, "no_known_answer": unknown,
               "trigger_to_verdict_ms": {"p50": p[0], "p95": p[1], "p99": p[2]}}
    print(json.dumps(summary, indent=2))
    write_results(args.out or default_out("plc_sim"), {"benchmark": "plc_sim", "command": command_line(), **summary})
    return 0 if missing == 0 and duplicates == 0 and mismatched == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
