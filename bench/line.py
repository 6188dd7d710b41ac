"""A simulated line through every line output: ``inspector live`` on a simulated line at
``--fps`` parts per second for ``--minutes``, into MQTT (a real Mosquitto), an HTTP receiver, and
inspector's own OPC UA and Modbus TCP servers with a simulated PLC acking each verdict on each;
the broker is restarted in the middle. Reports, per sink, verdict latency (capture to the
receiver, p50/p95/p99), lost verdicts (stored but never received) and duplicates.

    python bench/line.py --minutes 10 --fps 30                     # the issue's run
    python bench/line.py --minutes 2 --fps 30 --folder bench/out/elpv/test

The receivers are the ones the tests start (tests/line/servers.py), on 127.0.0.1 only. Without
``--model`` a PaDiM model (64 px) is trained on the folder's good images in a temporary data folder.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from common import OUT_DIR, command_line, default_out, format_table, machine_info, write_results  # noqa: E402
from plc_sim import ModbusPlc, OpcUaPlc  # noqa: E402

from tests.line.servers import Broker, Receiver, Subscriber, free_port, in_order_once  # noqa: E402

TOPIC = "bench/line"
LIVE = [sys.executable, "-c", "from inspector.cli import main; raise SystemExit(main())"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=30.0, help="parts per second of the simulated line (default 30)")
    parser.add_argument("--folder", type=Path, default=OUT_DIR / "elpv" / "test", help="part images (default bench/out/elpv/test)")
    parser.add_argument("--model", default=None, help="a model in your registry (default: train a quick one)")
    parser.add_argument("--restart-broker-s", type=float, default=5.0, help="how long the broker is down in the middle (default 5)")
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


class Plc(threading.Thread):
    """Acks every verdict it sees on one handshake sink; keeps (frame id, receive time)."""

    def __init__(self, plc) -> None:
        super().__init__(daemon=True)
        self.plc, self.seen, self.stop = plc, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                v = self.plc.verdict(0.5)
            except Exception:  # noqa: BLE001 — inspector has stopped and closed its server: the run is over
                return
            if v is not None:
                self.seen.append((v["frame"], time.time()))


def figures(name: str, received: list[tuple[int, float]], stored: dict[int, float]) -> dict:
    """``received``: (frame id, receive time) in arrival order; ``stored``: frame id -> capture time."""
    frames = [f for f, _ in received]
    once = in_order_once(frames)
    first = {}
    for f, t in received:
        first.setdefault(f, t)
    latency = [1000 * (first[f] - stored[f]) for f in once if f in stored]
    p = np.percentile(latency, [50, 95, 99]).round(1).tolist() if latency else [None] * 3
    return {"sink": name, "received": len(once), "lost": len(set(stored) - set(once)), "duplicates": len(frames) - len(once),
            "in_order": once == sorted(once), "p50_ms": p[0], "p95_ms": p[1], "p99_ms": p[2]}


def main(argv=None) -> int:
    from inspector.engine.results_store import ResultsStore

    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="inspector-line-"))
    env = {**os.environ, "INSPECTOR_HOME": str(work / "home"), "OMP_NUM_THREADS": "1"}
    model = args.model
    if model is None:
        good = next((p for p in (args.folder / "good", args.folder) if p.is_dir()), args.folder)
        subprocess.run([*LIVE, "train", str(good), "--method", "padim", "--image-size", "64", "--name", "line", "--device", "cpu"],
                       env=env, check=True, capture_output=True)
        model = "line"
    elif "INSPECTOR_HOME" in os.environ:
        env["INSPECTOR_HOME"] = os.environ["INSPECTOR_HOME"]
    else:
        env.pop("INSPECTOR_HOME")
    broker_dir = work / "broker"
    broker_dir.mkdir()
    broker, receiver = Broker(broker_dir).start(), Receiver()
    subscriber = Subscriber(broker.port, TOPIC)
    modbus_port, opcua_port = free_port(), free_port()
    db = work / "results.sqlite"
    live = subprocess.Popen([*LIVE, "live", "--source", f"sim:{args.folder}", "--fps", str(args.fps), "--model", model, "--db", str(db),
                             "--station-name", "bench", "--stats-every", "0", "--device", "cpu", "--sink-drain", "60",
                             "--sink", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", "--sink", receiver.url,
                             "--sink", f"modbus://127.0.0.1:{modbus_port}", "--sink", f"opcua://127.0.0.1:{opcua_port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # torch and the model load before the servers listen
    plcs = {"modbus": Plc(ModbusPlc("127.0.0.1", modbus_port, 1)), "opcua": Plc(OpcUaPlc("127.0.0.1", opcua_port, "bench"))}
    for p in plcs.values():
        p.start()
    duration = args.minutes * 60
    started = time.monotonic()
    time.sleep(duration / 2)
    broker.stop()
    time.sleep(args.restart_broker_s)
    broker.start()
    time.sleep(max(0.0, duration - (time.monotonic() - started)))
    live.send_signal(signal.SIGINT)
    _, stderr = live.communicate(timeout=180)
    time.sleep(2)
    for p in plcs.values():
        p.stop.set()
        p.join(5)
    store = ResultsStore(db, readonly=True)
    rows = store.query(newest_first=False)
    stored = {r.frame_id: r.time for r in rows}
    by_id = {f"{store.store_id}:{r.id}": r.frame_id for r in rows}
    mqtt = [(by_id.get(m["id"], -1), m["_received"]) for m in subscriber.messages]
    http = [(by_id.get(b["id"], -1), b["_received"]) for b in receiver.bodies]
    results = [figures("mqtt", mqtt, stored), figures("http", http, stored),
               figures("modbus", plcs["modbus"].seen, stored), figures("opcua", plcs["opcua"].seen, stored)]
    subscriber.close()
    receiver.close()
    broker.stop()
    seconds = max(r.time for r in rows) - min(r.time for r in rows) if rows else 0.0
    print(format_table(results, [("sink", "sink"), ("received", "received"), ("lost", "lost"), ("duplicates", "duplicates"),
                                 ("in_order", "in order"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms")]))
    print(f"{len(rows)} verdicts stored in {seconds:.0f} s ({len(rows) / max(seconds, 1e-9):.1f}/s); exit code {live.returncode}")
    path = write_results(args.out or default_out("line"), {"benchmark": "line", "command": command_line(), "machine": machine_info("cpu"),
                                                           "fps": args.fps, "minutes": args.minutes, "stored": len(rows),
                                                           "stored_per_s": len(rows) / max(seconds, 1e-9), "sinks": results,
                                                           "live_exit": live.returncode, "live_stderr_tail": stderr[-2000:]})
    print(f"results: {path}")
    return 0 if all(r["lost"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
