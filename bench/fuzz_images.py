"""Fuzz the image reader: every case must end in an array or an ImageReadError, in bounded time and memory.

Cases come from tests/image_fuzz.py (the generator the test suite samples a few hundred of):
random bytes, truncated / bit-flipped / overwritten real PNG, JPEG, BMP and TIFF files (8 and 16
bit, float TIFF, gray, RGB, RGBA, multi-page) and crafted headers claiming sizes far beyond, just
over and just under the pixel limit. They run in a worker process (a fresh interpreter) that
reports each case as one JSON line; the parent flags

* a crash: any other exception, a wrong array, or the worker dying (a segfault in a decoder),
* a hang: a case slower than --slow-s (killed after --kill-s and the worker restarted),
* memory: the worker's peak RSS growing more than --rss-mb over its start.

    python bench/fuzz_images.py                 # 3000 cases, seed 0, the default 100 MP limit
    python bench/fuzz_images.py --cases 20000 --seed 7

Prints a summary table and exits 1 on any crash, hang or memory excess.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import selectors
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, cpu_model, default_out, format_table, write_results  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def worker(start: int, count: int, seed: int, max_pixels: int | None) -> None:
    """Run cases start..start+count-1, one JSON line each, on stdout."""
    from inspector.data.images import max_image_pixels
    from tests.image_fuzz import check, make_case, seed_files

    limit = max_image_pixels(max_pixels)
    seed_files()
    with tempfile.TemporaryDirectory(prefix="fuzz-images-") as tmp:
        path = Path(tmp) / "case.img"
        path.write_bytes(seed_files()[0][1])
        check(path, limit)  # warm the decoders up before taking the baseline
        baseline = _rss_mb()
        print(json.dumps({"ready": True, "baseline_mb": round(baseline, 1)}), flush=True)
        for i in range(start, start + count):
            case = make_case(i, seed, limit)
            path.write_bytes(case.data)
            t = time.perf_counter()
            outcome, detail = check(path, limit)
            ms = (time.perf_counter() - t) * 1000
            print(json.dumps({"i": i, "kind": case.kind, "label": case.label, "outcome": outcome, "detail": detail[:300],
                              "ms": round(ms, 2), "rss_growth_mb": round(_rss_mb() - baseline, 1)}), flush=True)


class Worker:
    """The worker process and a line reader with a time-out."""

    def __init__(self, start: int, count: int, args: argparse.Namespace) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--start", str(start), "--cases", str(count), "--seed", str(args.seed)]
        if args.max_pixels is not None:
            cmd += ["--max-pixels", str(args.max_pixels)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)

    def line(self, timeout_s: float) -> dict | None:
        """The next JSON line; None when the worker died or was silent for ``timeout_s``."""
        if not self.selector.select(timeout_s):
            return None
        raw = self.proc.stdout.readline()
        return json.loads(raw) if raw else None

    def stop(self) -> str:
        """End the worker; says how it ended."""
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        self.selector.close()
        self.proc.stdout.close()
        return f"signal {-code}" if code < 0 else f"exit {code}"


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    counts: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    failures: list[dict] = []
    max_ms = 0.0
    peak_mb = 0.0
    slowest = None
    i, end = 0, args.cases
    restarts = 0
    while i < end:
        w = Worker(i, end - i, args)
        ready = w.line(120)
        if not ready or not ready.get("ready"):
            print(f"worker did not start ({w.stop()})", file=sys.stderr)
            return 2
        while i < end:
            rec = w.line(args.kill_s)
            if rec is None:  # died or hung on case i
                alive = w.proc.poll() is None
                how = w.stop()
                outcome = "hang" if alive else "crash"
                ended = f"killed after {args.kill_s:g} s" if alive else "died"
                rec = {"i": i, "outcome": outcome, "detail": f"worker {ended} ({how})", "ms": args.kill_s * 1000 if alive else 0}
                failures.append(rec)
                counts[outcome] += 1
                i += 1
                restarts += 1
                break
            outcome = rec["outcome"]
            if outcome != "crash" and rec["ms"] > args.slow_s * 1000:
                outcome = "hang"
                rec = rec | {"detail": f"took {rec['ms']:.0f} ms (over {args.slow_s:g} s)"}
            if rec["rss_growth_mb"] > args.rss_mb:
                outcome = "memory"
                rec = rec | {"detail": f"peak RSS grew {rec['rss_growth_mb']:.0f} MB (over {args.rss_mb} MB)"}
            counts[outcome] += 1
            by_kind.setdefault(rec["kind"], Counter())[outcome] += 1
            if outcome not in ("ok", "refused"):
                failures.append(rec)
            if rec["ms"] > max_ms:
                max_ms, slowest = rec["ms"], rec
            peak_mb = max(peak_mb, rec["rss_growth_mb"])
            i += 1
        else:
            w.stop()
    elapsed = time.perf_counter() - started

    bad = counts["crash"] + counts["hang"] + counts["memory"]
    rows = [{"kind": k, "cases": sum(c.values()), "ok": c["ok"], "refused": c["refused"], "crashes": c["crash"],
             "hangs": c["hang"], "memory": c["memory"]} for k, c in sorted(by_kind.items())]
    rows.append({"kind": "all", "cases": args.cases, "ok": counts["ok"], "refused": counts["refused"], "crashes": counts["crash"],
                 "hangs": counts["hang"], "memory": counts["memory"]})
    print(format_table(rows, [("kind", "kind"), ("cases", "cases"), ("ok", "ok"), ("refused", "refused"),
                              ("crashes", "crashes"), ("hangs", "hangs > %gs" % args.slow_s), ("memory", "memory > %d MB" % args.rss_mb)]))
    print(f"max {max_ms:.0f} ms per case ({slowest['kind']} {slowest['label']}: {slowest['outcome']})" if slowest else "")
    print(f"peak RSS growth {peak_mb:.0f} MB over the worker's start; {elapsed:.1f} s in all, {restarts} worker restart(s)")
    for f in failures[:20]:
        print(f"  FAIL case {f['i']} {f.get('kind', '?')} {f.get('label', '')}: {f['outcome']}: {f['detail']}")
    payload = {
        "command": command_line(), "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cases": args.cases, "seed": args.seed,
        "max_pixels": args.max_pixels, "counts": dict(counts), "by_kind": {k: dict(c) for k, c in by_kind.items()},
        "max_ms": max_ms, "peak_rss_growth_mb": peak_mb, "elapsed_s": round(elapsed, 1), "failures": failures,
    }
    out = write_results(Path(args.out) if args.out else default_out("fuzz-images"), payload)
    print(f"results -> {out}")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=3000, help="number of cases (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="case generator seed (default 0)")
    parser.add_argument("--max-pixels", type=int, default=None, help="pixel limit (default: INSPECTOR_MAX_IMAGE_PIXELS or 100 MP)")
    parser.add_argument("--slow-s", type=float, default=5.0, help="a case slower than this is a hang (default 5)")
    parser.add_argument("--kill-s", type=float, default=30.0, help="kill the worker after this long on one case (default 30)")
    parser.add_argument("--rss-mb", type=int, default=2048, help="peak RSS growth bound in MB (default 2048)")
    parser.add_argument("--out", default=None, help="results JSON (default bench/out/fuzz-images-<time>.json)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cases < 1 or args.slow_s <= 0 or args.kill_s < args.slow_s or args.rss_mb < 1:
        parser.error("--cases >= 1, --slow-s > 0, --kill-s >= --slow-s and --rss-mb >= 1")
    if args.worker:
        worker(args.start, args.cases, args.seed, args.max_pixels)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
