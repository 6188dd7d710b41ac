"""Kill drills: SIGKILL training and live inspection at random moments, many times, and check
that nothing is lost.

Every drill runs the real command line (``python -m inspector.cli``) in a fresh ``INSPECTOR_HOME``
and kills it with SIGKILL (no clean-up code can run) at a random moment: most kills are drawn
uniformly over the work of an uninterrupted reference run (training from its first epoch to the
model file stored, plus 5 %; live from the first result to the last), the rest (``START_UP_SHARE``)
in the start-up before it (imports, reading the images), so kills land in every epoch, the
checkpoint writes, calibration, the final save and the database commits. Then the same command
runs again (the recovery run) and is checked:

* **train** (``inspector train``, a tiny GANomaly at 32 px): the recovery run exits 0, resumes
  if a checkpoint was there, and its model has exactly the weights (every safetensors tensor,
  bit for bit) of an uninterrupted reference run with the same seed; no checkpoint and no
  ``*.tmp`` file is left in the registry or the checkpoints folder. A kill after the model was
  stored but before its checkpoint was removed makes the recovery store it once more (a second,
  identical version): counted as "duplicate versions", nothing lost.
* **live** (``inspector live`` on a folder of images, every image stored, ``--json``): after the
  kill the results database passes ``PRAGMA integrity_check``, every result the process printed
  as stored (``"stored": true`` with its id) is in the database ("rows lost" counts those that
  are not), and every row that names an image has that image file; the recovery run (a few
  frames on the same database) exits 0 and leaves no ``*.tmp`` in the results folder. Odd drills
  use ``--durable``.

    INSPECTOR_THREADS=1 python bench/drills.py                       # defaults: ~10 min on 2 cores
    python bench/drills.py --train-drills 3 --live-drills 3          # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, default_out, describe_machine, format_table, machine_info, write_results

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 10
START_UP_SHARE = 0.15  # share of kills drawn in the start-up (imports, reading images) rather than in the work
TRAIN_ARGS = ["--name", "drill", "--image-size", "32", "--epochs", str(EPOCHS), "--batch-size", "8",
              "--device", "cpu", "--param", "width=8", "--param", "nz=16"]
RUN_TIMEOUT_S = 300  # any single command; a hang is a failed drill, not a stuck benchmark


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "inspector.cli", *args]


def env_for(home: Path, threads: int) -> dict[str, str]:
    return {**os.environ, "INSPECTOR_HOME": str(home), "INSPECTOR_THREADS": str(threads),
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def make_parts(folder: Path, n: int, seed: int) -> list[Path]:
    """Gray 64 px "parts": a disc with a hole on a noisy background, a little shifted each time."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        image = np.full((64, 64), 90, np.float64)
        cx, cy = 32 + rng.integers(-2, 3), 32 + rng.integers(-2, 3)
        cv2.circle(image, (int(cx), int(cy)), 20, 170, -1)
        cv2.circle(image, (int(cx), int(cy)), 6, 60, -1)
        image += rng.normal(0, 4, image.shape)
        path = folder / f"part_{i:03d}.png"
        cv2.imwrite(str(path), np.clip(image, 0, 255).astype(np.uint8))
        paths.append(path)
    return paths


def temp_files(*folders: Path) -> list[Path]:
    return sorted(p for f in folders if f.exists() for p in f.rglob("*.tmp"))


def tensors_equal(a: Path, b: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    left, right = load_file(str(a)), load_file(str(b))
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


_RUNNING: set[subprocess.Popen] = set()  # killed if the drills themselves are stopped


def _stop(*_) -> None:
    raise KeyboardInterrupt


class Run:
    """A command whose output lines are read as they come; ``marked`` is set (and ``marked_at``
    recorded, seconds from the start) at the first line that ``is_mark`` accepts."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, is_mark, mark_stream: str = "stdout") -> None:
        self.started = time.monotonic()
        self.marked = threading.Event()
        self.marked_at: float | None = None
        self.last_mark_at: float | None = None
        self.lines: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        self._is_mark, self._mark_stream = is_mark, mark_stream
        self._log = log
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _RUNNING.add(self.proc)
        self._readers = [threading.Thread(target=self._read, args=(name,), daemon=True) for name in ("stdout", "stderr")]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str) -> None:
        for line in getattr(self.proc, name):
            self.lines[name].append(line)
            if name == self._mark_stream and self._is_mark(line):
                self.last_mark_at = time.monotonic() - self.started
                if self.marked_at is None:
                    self.marked_at = self.last_mark_at
                    self.marked.set()

    def kill_at(self, delay: float) -> bool:
        """SIGKILL ``delay`` s after the start; False if it had ended by then."""
        try:
            self.proc.wait(timeout=max(delay - (time.monotonic() - self.started), 0.0))
            killed = False
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            killed = True
        self.close()
        return killed

    def close(self) -> None:
        try:
            self.proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        _RUNNING.discard(self.proc)
        for reader in self._readers:
            reader.join(timeout=30)
        self._log.write_bytes(b"".join(self.lines["stderr"]))

    def kill_somewhere(self, rng: random.Random, window: tuple[float, float]) -> tuple[bool, float]:
        """Kill in the start-up (``START_UP_SHARE`` of the drills) or over the work: from this
        run's own mark (start-up times vary with the load) plus a uniform share of the
        reference run's work (``window``: its mark and its end, from its start)."""
        if rng.random() < START_UP_SHARE:
            delay = rng.uniform(0.0, window[0])
        else:
            self.marked.wait(timeout=RUN_TIMEOUT_S)
            delay = (self.marked_at or 0.0) + rng.uniform(0.0, (window[1] - window[0]) * 1.05)
        return self.kill_at(delay), delay


# --- training ------------------------------------------------------------------------------------
def train_phase(home: Path) -> str:
    """Where the killed run was, from what it left behind."""
    import torch

    models = home / "data" / "models" / "drill"
    checkpoints = list((home / "cache" / "checkpoints").glob("drill-*.ckpt"))
    if models.exists() and list(models.glob("v*.inspector")):
        return "stored, checkpoint not yet removed" if checkpoints else "after the save"
    if not checkpoints:
        return "start-up / epoch 1"
    try:
        epoch = int(torch.load(checkpoints[0], map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001
        return "checkpoint unreadable"
    return f"epoch {epoch + 1}" if epoch < EPOCHS else "calibration / save"


def is_training_line(line: bytes) -> bool:
    return line.startswith(b"training ")  # the CLI's progress line, printed at the first step


def reference_train(data: Path, home: Path, threads: int, log: Path) -> tuple[Path, tuple[float, float]]:
    """An uninterrupted run: its model and (first training step, model file stored) in seconds
    from its start (after the save only the interpreter's exit is left: no need to kill there)."""
    model = home / "data" / "models" / "drill" / "v1.inspector"
    run = Run(cli("train", str(data), *TRAIN_ARGS), env_for(home, threads), log, is_training_line, "stderr")
    stored = None
    while run.proc.poll() is None and time.monotonic() - run.started < RUN_TIMEOUT_S:
        if stored is None and model.exists():
            stored = time.monotonic() - run.started
        time.sleep(0.005)
    run.close()
    if run.proc.returncode != 0 or run.marked_at is None:
        raise SystemExit(f"the reference training failed (exit {run.proc.returncode}); see {log}")
    return model, (run.marked_at, stored if stored is not None else time.monotonic() - run.started)


def train_drill(i: int, work: Path, data: Path, reference: Path, window: tuple[float, float], rng: random.Random,
                threads: int) -> dict[str, Any]:
    home = work / f"train-{i:03d}"
    env, cmd = env_for(home, threads), cli("train", str(data), *TRAIN_ARGS)
    run = Run(cmd, env, work / f"train-{i:03d}-killed.log", is_training_line, "stderr")
    killed, delay = run.kill_somewhere(rng, window)
    ran = time.monotonic() - run.started
    phase = train_phase(home) if killed else "finished first"
    left_by_kill = len(temp_files(home))
    models = home / "data" / "models" / "drill"
    complete = bool(list(models.glob("v*.inspector"))) and not list((home / "cache" / "checkpoints").glob("*.ckpt"))
    # the operator reruns the command unless the run had finished its job (model stored, checkpoint gone)
    recovery = None if complete else subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    versions = sorted((home / "data" / "models" / "drill").glob("v*.inspector"), key=lambda p: int(p.stem[1:]))
    ok_exit = recovery is None or recovery.returncode == 0
    match = bool(versions) and all(tensors_equal(v, reference) for v in versions)
    temps = temp_files(home / "data" / "models", home / "cache" / "checkpoints")
    checkpoints = list((home / "cache" / "checkpoints").glob("*.ckpt"))
    resumed = next((line for line in recovery.stderr.splitlines() if line.startswith("resuming from")), "") if recovery else ""
    row = {
        "drill": i, "delay_s": round(delay, 2), "ran_s": round(ran, 2), "killed": killed, "phase": phase,
        "temps_left_by_kill": left_by_kill, "recovery_exit": recovery.returncode if recovery else None, "resumed": resumed,
        "versions": len(versions), "weights_match": match, "temps_left": len(temps), "checkpoints_left": len(checkpoints),
    }
    row["survived"] = ok_exit and match and not temps and not checkpoints and len(versions) >= 1
    if not ok_exit:
        row["recovery_error"] = recovery.stderr.strip().splitlines()[-1:] or [""]
    return row


# --- live ----------------------------------------------------------------------------------------
def live_command(frames: Path, model: Path, db: Path, max_frames: int, durable: bool) -> list[str]:
    return cli("live", "--source", str(frames), "--include-existing", "--model", str(model), "--db", str(db),
               "--save-ok-every", "1", "--json", "--device", "cpu", "--stats-every", "0",
               "--max-frames", str(max_frames), *(["--durable"] if durable else []))


def check_database(db: Path) -> dict[str, Any]:
    """integrity_check, the row ids, and rows whose image file is missing (opened read-only)."""
    if not db.exists():
        return {"integrity": "no database", "ids": set(), "missing_images": 0, "rows": 0}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        rows = con.execute("SELECT id, image FROM inspections").fetchall()
    finally:
        con.close()
    missing = sum(1 for _, image in rows if image and not (db.parent / image).is_file())
    return {"integrity": integrity, "ids": {r[0] for r in rows}, "missing_images": missing, "rows": len(rows)}


def is_result_line(line: bytes) -> bool:
    return line.startswith(b'{"event": "result"')


def stored_ids(run: Run) -> set[int]:
    ids = set()
    for line in run.lines["stdout"]:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut by the kill
        if event.get("event") == "result" and event.get("stored"):
            ids.add(event["id"])
    return ids


def live_drill(i: int, work: Path, frames: Path, n_frames: int, model: Path, window: tuple[float, float],
               rng: random.Random, threads: int) -> dict[str, Any]:
    home = work / f"live-{i:03d}"
    durable = i % 2 == 1
    db = home / "results" / "results.sqlite"
    env = env_for(home, threads)
    run = Run(live_command(frames, model, db, n_frames, durable), env, work / f"live-{i:03d}-killed.log", is_result_line)
    killed, delay = run.kill_somewhere(rng, window)
    ran = time.monotonic() - run.started
    reported = stored_ids(run)
    after_kill = check_database(db)
    left_by_kill = len(temp_files(home / "results"))
    recovery = subprocess.run(live_command(frames, model, db, 3, durable), env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
    after = check_database(db)
    temps = temp_files(home / "results")
    lost = len(reported - (after_kill["ids"] & after["ids"]))  # printed as stored, missing after the kill or the recovery
    row = {
        "drill": i, "durable": durable, "delay_s": round(delay, 2), "ran_s": round(ran, 2), "killed": killed,
        "reported_stored": len(reported), "rows_after_kill": after_kill["rows"], "rows_lost": lost,
        "integrity_after_kill": after_kill["integrity"], "integrity_after_recovery": after["integrity"],
        "rows_without_image": max(after_kill["missing_images"], after["missing_images"]),
        "temps_left_by_kill": left_by_kill, "recovery_exit": recovery.returncode, "temps_left": len(temps),
    }
    row["survived"] = (recovery.returncode == 0 and lost == 0 and row["rows_without_image"] == 0 and not temps
                       and after_kill["integrity"] in ("ok", "no database") and after["integrity"] == "ok")
    if recovery.returncode != 0:
        row["recovery_error"] = recovery.stderr.strip().splitlines()[-1:] or [""]
    return row


# --- main ----------------------------------------------------------------------------------------
def summarise(kind: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": kind,
        "drills": len(rows),
        "killed": sum(r["killed"] for r in rows),
        "survived": sum(r["survived"] for r in rows),
        "rows_lost": sum(r.get("rows_lost", 0) for r in rows) if kind.startswith("live") else None,
        "rows_without_image": sum(r.get("rows_without_image", 0) for r in rows) if kind.startswith("live") else None,
        "weight_mismatches": sum(not r["weights_match"] for r in rows) if kind == "train" else None,
        "duplicate_versions": sum(r["versions"] > 1 for r in rows) if kind == "train" else None,
        "temps_left": sum(r["temps_left"] for r in rows),
        "failed_recoveries": sum(r["recovery_exit"] not in (0, None) for r in rows),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-drills", type=int, default=12, metavar="N", help="training runs to kill (default 12)")
    parser.add_argument("--live-drills", type=int, default=12, metavar="N", help="live runs to kill (default 12)")
    parser.add_argument("--frames", type=int, default=300, help="images in the watched folder of a live drill (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="INSPECTOR_THREADS of every command (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed) for a look")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default bench/out/drills-<time>.json)")
    args = parser.parse_args()
    if not (0 <= args.train_drills <= 1000 and 0 <= args.live_drills <= 1000 and 1 <= args.frames <= 10_000):
        parser.error("drills must be 0..1000 each and --frames 1..10000")
    rng = random.Random(args.seed)
    signal.signal(signal.SIGTERM, _stop)  # stopped from outside: end the children too, remove the work folder
    work = Path(tempfile.mkdtemp(prefix="inspector-drills-"))
    print(f"work folder {work}", flush=True)
    t0 = time.monotonic()
    try:
        data = work / "parts"
        make_parts(data, 40, seed=1)
        reference, train_window = reference_train(data, work / "reference", args.threads, work / "reference.log")
        train_s = train_window[1]
        print(f"reference training: first step at {train_window[0]:.1f} s, model stored at {train_s:.1f} s", flush=True)

        train_rows = []
        for i in range(args.train_drills):
            row = train_drill(i, work, data, reference, train_window, rng, args.threads)
            train_rows.append(row)
            print(f"train drill {i}: killed={row['killed']} at {row['delay_s']} s ({row['phase']}), "
                  f"survived={row['survived']} {row['resumed']}", flush=True)

        live_rows = []
        if args.live_drills:
            frames = work / "frames"
            make_parts(frames, args.frames, seed=2)
            run = Run(live_command(frames, reference, work / "live-reference" / "r.sqlite", args.frames, False),
                      env_for(work / "live-reference", args.threads), work / "live-reference.log", is_result_line)
            run.close()
            live_s = time.monotonic() - run.started
            if run.proc.returncode != 0 or run.marked_at is None:
                raise SystemExit(f"the reference live run failed (exit {run.proc.returncode}); see {work / 'live-reference.log'}")
            window = (run.marked_at, run.last_mark_at)
            print(f"reference live run ({args.frames} frames): {live_s:.1f} s, results from {window[0]:.1f} to {window[1]:.1f} s", flush=True)
            for i in range(args.live_drills):
                row = live_drill(i, work, frames, args.frames, reference, window, rng, args.threads)
                live_rows.append(row)
                print(f"live drill {i}: killed={row['killed']} at {row['delay_s']} s, {row['reported_stored']} reported "
                      f"stored, lost {row['rows_lost']}, integrity {row['integrity_after_kill']}, "
                      f"survived={row['survived']}", flush=True)
    finally:
        for proc in list(_RUNNING):
            proc.kill()
            proc.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    summary = [summarise("train", train_rows)] if train_rows else []
    if live_rows:
        summary.append(summarise("live", [r for r in live_rows if not r["durable"]]))
        summary.append(summarise("live --durable", [r for r in live_rows if r["durable"]]))
    columns = [("kind", "drill"), ("drills", "drills run"), ("killed", "killed mid-run"), ("survived", "survived"),
               ("rows_lost", "rows lost"), ("rows_without_image", "rows without image"),
               ("weight_mismatches", "weight mismatches"), ("duplicate_versions", "duplicate versions"),
               ("temps_left", "temp files left"), ("failed_recoveries", "failed recoveries")]
    print()
    print(format_table(summary, columns))
    if train_rows:
        phases: dict[str, int] = {}
        for r in train_rows:
            phases[r["phase"]] = phases.get(r["phase"], 0) + 1
        print("training killed in: " + ", ".join(f"{k} {v}" for k, v in sorted(phases.items())))
    total = time.monotonic() - t0
    print(f"\n{total:.0f} s; reference training {train_s:.1f} s" + (f", reference live run {live_s:.1f} s" if live_rows else ""))
    machine = machine_info("cpu")
    machine["torch_threads"] = args.threads  # what every command ran with
    print(describe_machine(machine))
    out = write_results(args.out or default_out("drills"), {
        "command": command_line(), "machine": machine, "seconds": round(total, 1), "summary": summary, "train": train_rows, "live": live_rows,
    })
    print(f"results -> {out}")
    return 0 if all(r["survived"] for r in train_rows + live_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
