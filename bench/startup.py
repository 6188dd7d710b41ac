"""Startup time of the desktop app: from process start to the window first painted on screen.

Runs ``python -m inspector.cli gui`` several times with ``INSPECTOR_STARTUP_PROBE`` set (the app
prints the time of its first paint and quits) under a real X server (Xvfb) when there is one,
else Qt's offscreen platform. Prints a table and writes bench/out/startup.json.

    python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))


def start_x_server() -> tuple[subprocess.Popen | None, dict]:
    """A private Xvfb display, or the offscreen platform when Xvfb is not installed."""
    if not shutil.which("Xvfb"):
        return None, {"QT_QPA_PLATFORM": "offscreen"}
    for display in range(91, 120):
        if Path(f"/tmp/.X{display}-lock").exists():
            continue
        server = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL)
        for _ in range(50):
            if Path(f"/tmp/.X11-unix/X{display}").exists():
                return server, {"DISPLAY": f":{display}", "QT_QPA_PLATFORM": "xcb"}
            time.sleep(0.1)
        server.kill()
    return None, {"QT_QPA_PLATFORM": "offscreen"}


def measure(command: list[str], env: dict) -> tuple[float, float]:
    """(seconds from process start to first paint, seconds inside Python) of one run."""
    env = {**env, "INSPECTOR_STARTUP_PROBE": f"{time.time():.6f}"}
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    for line in out.stdout.splitlines():
        if line.startswith("startup-visible"):
            _, since_spawn, inside = line.split()
            return float(since_spawn), float(inside)
    raise RuntimeError(f"no startup line from the app (exit {out.returncode}):\n{out.stdout}\n{out.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out" / "startup.json")
    args = parser.parse_args()

    server, display_env = start_x_server()
    home = tempfile.mkdtemp(prefix="inspector-startup-")
    env = {**os.environ, **display_env, "INSPECTOR_HOME": home}
    try:
        command = [sys.executable, "-m", "inspector.cli", "gui"]
        measure(command, env)  # warm the OS file cache once (not counted)
        runs = [measure(command, env) for _ in range(args.runs)]
        import_runs = []
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import inspector.gui.main_window"], env=env, check=True, cwd=ROOT)
            import_runs.append(time.perf_counter() - t)
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(home, ignore_errors=True)

    visible = [r[0] for r in runs]
    inside = [r[1] for r in runs]
    rows = [
        ("process start → window painted", visible),
        ("  of which from inspector.gui.app.run() on", inside),
        ("python -c 'import inspector.gui.main_window'", import_runs),
    ]
    print(f"startup of the desktop app ({display_env['QT_QPA_PLATFORM']}, {args.runs} runs, cores: {os.cpu_count()})")
    print(f"{'measure':48s} {'median':>8s} {'min':>8s} {'max':>8s}")
    for name, values in rows:
        print(f"{name:48s} {statistics.median(values):7.2f}s {min(values):7.2f}s {max(values):7.2f}s")
    try:
        from common import machine_info

        machine = machine_info("cpu")
    except Exception:  # noqa: BLE001 — the machine description is a nice-to-have
        machine = {"cores": os.cpu_count()}
    result = {
        "benchmark": "startup",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine,
        "platform": display_env["QT_QPA_PLATFORM"],
        "runs": args.runs,
        "visible_s": {"median": statistics.median(visible), "min": min(visible), "max": max(visible), "all": visible},
        "in_app_s": {"median": statistics.median(inside), "all": inside},
        "import_s": {"median": statistics.median(import_runs), "all": import_runs},
        "target_s": 3.0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"written {args.out}")
    return 0 if result["visible_s"]["median"] < 3.0 else 1


if __name__ == "__main__":
    sys.exit(main())
