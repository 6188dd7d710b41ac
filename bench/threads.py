"""Thread check: scoring must not get slower with more threads, wherever the app scores.

Three ways of scoring one 64 px image at a time (``model.score``, batch 1, no reconstruction), each
on 1 and on 2 cores, each in a fresh process (libgomp's thread pools are per process and outlive
the threads that used them), the model made on the main thread with that many torch threads, as
the app loads it:

* **main**: from the main thread, on that many torch threads (``inspector predict``, training);
* **worker**: from one other thread, on that many torch threads (the app's background jobs; live
  mode before it scored frames side by side). libgomp throttles its threads' spin-wait once it
  manages more threads than there are CPUs, and every op's barrier then sleeps: this once took
  33-45 ms a frame on 2 threads against 10-14 ms from the main thread;
* **live**: as live mode scores: one worker thread per core, each on one torch thread
  (``engine.device.live_threads``), frames side by side; the time is wall time per image.

It exits with 1 when a way is slower on 2 cores than on 1 by more than ``--tolerance``: the
regression catcher for the effect above. Other work on the machine makes more threads slower for
real (a spinning thread waits for one that is not running): run it on an otherwise idle machine;
the load average is printed. ``--repeats`` runs every case again, alternating, and takes the median.

    python bench/threads.py                               # patchcore and seg-skip-ganomaly, 1 and 2 cores
    python bench/threads.py --methods padim --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import OUT_DIR, command_line, format_table, write_results

WAYS = ("main", "worker", "live")
THREADS = (1, 2)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="patchcore,seg-skip-ganomaly", help="comma-separated (default patchcore,seg-skip-ganomaly)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=60, help="images scored per case after 5 of warm-up (default 60)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every case, alternating; the median counts (default 3)")
    parser.add_argument("--tolerance", type=float, default=0.10, help="2 cores may be this much slower than 1 (default 0.10)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "threads.json")
    parser.add_argument("--case", nargs=3, metavar=("METHOD", "WAY", "THREADS"), help=argparse.SUPPRESS)  # one case, in this process
    return parser.parse_args(argv)


def run_case(method: str, way: str, threads: int, size: int, images: int) -> float:
    """ms per image of one way of scoring on ``threads`` cores, in this (fresh) process."""
    import torch

    from inspector.engine.device import limit_threads, live_threads, steady_memory
    from inspector.models import create_model

    steady_memory()
    limit_threads(threads)
    model = create_model(method, image_size=size).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        if model.fit_only:  # a bank or Gaussian of the size a short fit gives
            model.fit_normal(iter([torch.rand(16, 1, size, size, generator=generator) * 2 - 1 for _ in range(3)]))
    x = torch.rand(1, 1, size, size, generator=generator) * 2 - 1

    def score(n: int) -> None:
        with torch.inference_mode():
            for _ in range(n):
                model.score(x, reconstruct=False)

    def timed(n: int) -> float:
        score(5)
        started = time.perf_counter()
        score(n)
        return time.perf_counter() - started

    if way == "main":
        return timed(images) * 1000 / images
    if way == "worker":
        result: list[float] = []
        thread = threading.Thread(target=lambda: result.append(timed(images)))
        thread.start()
        thread.join()
        return result[0] * 1000 / images
    workers = live_threads(threads)
    barrier = threading.Barrier(workers + 1)
    per_worker = images // workers

    def work() -> None:
        score(5)
        barrier.wait()
        score(per_worker)

    pool = [threading.Thread(target=work) for _ in range(workers)]
    for t in pool:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in pool:
        t.join()
    return (time.perf_counter() - started) * 1000 / (per_worker * workers)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.case:
        method, way, threads = args.case
        print(json.dumps(run_case(method, way, int(threads), args.image_size, args.images)))
        return 0
    command = command_line()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    load_start = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"command: {command}\n{os.cpu_count()} cores; load average {load_start}\n", flush=True)
    times: dict[tuple[str, str, int], list[float]] = {}
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "INSPECTOR_THREADS")}  # the case sets its own
    for repeat in range(args.repeats):
        for method in methods:
            for way in WAYS:
                for threads in THREADS:
                    out = subprocess.run([sys.executable, __file__, "--case", method, way, str(threads),
                                          "--image-size", str(args.image_size), "--images", str(args.images)],
                                         capture_output=True, text=True, env=env, check=True)
                    ms = float(out.stdout.strip().splitlines()[-1])
                    times.setdefault((method, way, threads), []).append(ms)
                    print(f"[{method} {way} {threads} core(s), run {repeat + 1}] {ms:.1f} ms/image", flush=True)
    rows, slower = [], []
    for method in methods:
        for way in WAYS:
            one, two = (statistics.median(times[(method, way, t)]) for t in THREADS)
            ok = two <= one * (1 + args.tolerance)
            rows.append({"method": method, "way": way, "ms_1": one, "ms_2": two, "speed-up": one / two, "ok": ok})
            if not ok:
                slower.append(f"{method} {way}: {two:.1f} ms/image on 2 cores, {one:.1f} on 1")
    load_end = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print()
    print(format_table(rows, [("method", "method"), ("way", "scored from"), ("ms_1", "1 core ms"), ("ms_2", "2 cores ms"),
                              ("speed-up", "speed-up"), ("ok", "not slower")]))
    print(f"\nmedians of {args.repeats} runs each, one fresh process per run; load average {load_start} at the start, "
          f"{load_end} at the end (other work on the machine makes more threads slower for real)")
    write_results(args.out, {"benchmark": "threads", "command": command, "load_average": [load_start, load_end],
                             "settings": vars(args) | {"out": str(args.out)}, "results": rows,
                             "runs": {f"{m} {w} {t}": v for (m, w, t), v in times.items()}})
    for line in slower:
        print(f"SLOWER WITH MORE THREADS: {line}")
    print(f"\nresults: {args.out}\ncommand: {command}")
    return 1 if slower else 0


if __name__ == "__main__":
    raise SystemExit(main())
