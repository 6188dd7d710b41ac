"""Live-mode benchmark: a 640×480 video source through the headless live loop, per method.

For each method a model is trained briefly (speed does not depend on how well it is trained)
at ``--image-size``, then the generated video runs through ``LiveInspector`` into a results
store (NG frames written as images, as on the line) in two ways:

* **camera**: the video played at ``--fps`` (30 by default) like a camera; the newest frame
  wins. Reported: the sustained inspection rate, the share of camera frames dropped, and the
  frame latency (capture → result committed) p50 / p95.
* **max**: the video read as fast as the loop takes it (no frame dropped): the highest
  sustained rate, and its latency (includes up to one frame waiting for the previous one).

The first ``--warmup`` seconds of each run are not counted.

    INSPECTOR_THREADS=1 python bench/live.py                  # every method that imports
    INSPECTOR_THREADS=1 python bench/live.py --methods ganomaly --seconds 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (
    OUT_DIR,
    add_common_arguments,
    apply_threads,
    command_line,
    describe_machine,
    finish,
    format_table,
    machine_info,
    method_params,
    select_methods,
    write_results,
)

TARGET_FPS = 30.0
TARGET_P95_MS = 50.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.set_defaults(out=OUT_DIR / "live.json")
    parser.add_argument("--image-size", type=int, default=64, help="model input size (default 64)")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frame rate of the 'camera' run (default 30)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run (default 8)")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds not counted at the start of a run (default 1.5)")
    parser.add_argument("--frames", type=int, default=90, help="frames in the generated video (default 90, looped)")
    parser.add_argument("--train-images", type=int, default=48, help="images for the short training (default 48)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (default 1)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    return parser.parse_args(argv)


def make_scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A gray 'part on a conveyor': textured background, a bright ring, small pose/light jitter, noise."""
    import cv2

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = 90 + 20 * np.sin(xx / 9.0 + rng.uniform(0, 1)) * np.sin(yy / 9.0)
    centre = (int(width / 2 + rng.integers(-6, 7)), int(height / 2 + rng.integers(-6, 7)))
    image = cv2.circle(image, centre, height // 4, float(rng.uniform(190, 210)), max(2, height // 12))
    image += rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_video(path: Path, args) -> Path:
    """The camera stand-in: MJPG like most industrial/USB cameras, every 10th part defective."""
    from inspector.data.sources import write_video
    from inspector.data.synthetic import paint_defect

    rng = np.random.default_rng(args.seed)
    frames = []
    for i in range(args.frames):
        frame = make_scene(rng, args.width, args.height)
        if i % 10 == 5:
            frame = paint_defect(frame, rng, "blob", scale=2.0)[0]
        frames.append(frame)
    return write_video(path, frames, fps=args.fps, lossless=False)


def train(method: str, args, folder: Path):
    from inspector.data.images import write_image
    from inspector.engine.trainer import TrainConfig, Trainer
    from inspector.models import get_method

    paths = []
    rng = np.random.default_rng(args.seed + 1)
    for i in range(args.train_images):
        path = folder / f"train_{i:03d}.png"
        if not path.exists():
            write_image(path, make_scene(rng, args.width, args.height))
        paths.append(path)
    defaults = get_method(method).Config()
    config = TrainConfig(
        method=method, image_size=args.image_size, channels=defaults.channels, epochs=args.epochs,
        batch_size=16, seed=args.seed, device=args.device, params=method_params(method, args.param),
    )
    return Trainer(config).fit(paths)


def run_live(predictor, video: Path, db: Path, args, realtime: bool) -> dict:
    from inspector.data.sources import VideoFileSource
    from inspector.engine.live import LiveInspector
    from inspector.engine.results_store import ResultsStore

    store = ResultsStore(db)
    stamps: list[tuple[float, float, float]] = []  # (done time, latency, inference)
    source = VideoFileSource(video, loop=True, fps=args.fps if realtime else None)
    live = LiveInspector(source, predictor, store, on_result=lambda r: stamps.append((time.perf_counter(), r.latency_ms, r.inference_ms)))
    started = time.perf_counter()
    live.start()
    time.sleep(args.warmup)
    threads = {t.name: t.native_id for t in live._threads}
    cpu0 = {name: _cpu_ns(tid) for name, tid in threads.items()}
    dropped0 = live.stats().dropped
    n0 = len(stamps)
    time.sleep(args.seconds)
    n1 = len(stamps)
    cpu1 = {name: _cpu_ns(tid) for name, tid in threads.items()}
    dropped1 = live.stats().dropped
    live.stop()
    store.close()
    window = stamps[n0:n1]
    if len(window) < 2:
        raise RuntimeError(f"only {len(window)} frames inspected in {args.seconds} s")
    span = window[-1][0] - window[0][0]
    latencies = np.array([w[1] for w in window])
    delivered = len(window) + (dropped1 - dropped0)
    cpu = {name: (cpu1[name] - cpu0[name]) / 1e6 if cpu0[name] is not None and cpu1[name] is not None else None for name in threads}
    inference_cpu = cpu.get("live-inference")
    capture_cpu = cpu.get("live-capture")
    return {
        "inference_cpu_ms": inference_cpu / max(n1 - n0, 1) if inference_cpu is not None else None,
        "capture_cpu_ms": capture_cpu / max(delivered, 1) if capture_cpu is not None else None,
        "fps": (len(window) - 1) / span,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "inference_ms": statistics.median(w[2] for w in window),
        "dropped_pct": 100.0 * (dropped1 - dropped0) / max(delivered, 1),
        "frames": len(window),
        "errors": live.stats().errors,
        "elapsed_s": time.perf_counter() - started,
    }


def measure(method: str, args, video: Path, work: Path) -> dict:
    from inspector.engine.predictor import Predictor

    t0 = time.perf_counter()
    bundle = train(method, args, work / "train")
    train_s = time.perf_counter() - t0
    predictor = Predictor(bundle, args.device)
    camera = run_live(predictor, video, work / f"{method}-camera.sqlite", args, realtime=True)
    fastest = run_live(predictor, video, work / f"{method}-max.sqlite", args, realtime=False)
    row = {
        "method": method,
        "size": args.image_size,
        "camera_fps": camera["fps"],
        "camera_dropped_pct": camera["dropped_pct"],
        "camera_p50_ms": camera["p50_ms"],
        "camera_p95_ms": camera["p95_ms"],
        "max_fps": fastest["fps"],
        "max_p50_ms": fastest["p50_ms"],
        "max_p95_ms": fastest["p95_ms"],
        "inference_ms": fastest["inference_ms"],
        "cpu_infer_ms": fastest["inference_cpu_ms"],
        "cpu_capture_ms": fastest["capture_cpu_ms"],
        "idle_fps_estimate": (1000.0 / max(fastest["inference_cpu_ms"], fastest["capture_cpu_ms"] or 0.0)
                              if fastest["inference_cpu_ms"] else None),
        "train_s": train_s,
        "meets_target": camera["fps"] >= TARGET_FPS * 0.98 and camera["p95_ms"] <= TARGET_P95_MS and fastest["fps"] >= TARGET_FPS,
        "camera": camera,
        "max": fastest,
    }
    print(
        f"[{method} {args.image_size}px] camera {args.fps:g} fps: inspected {camera['fps']:.1f} fps, "
        f"dropped {camera['dropped_pct']:.1f} %, latency p50 {camera['p50_ms']:.1f} ms p95 {camera['p95_ms']:.1f} ms; "
        f"max {fastest['fps']:.1f} fps (p50 {fastest['p50_ms']:.1f} / p95 {fastest['p95_ms']:.1f} ms), "
        f"inference {fastest['inference_ms']:.1f} ms (CPU {row['cpu_infer_ms'] or 0:.1f} ms/frame, capture "
        f"{row['cpu_capture_ms'] or 0:.1f} ms/frame)",
        flush=True,
    )
    return row


def _cpu_ns(tid: int | None) -> int | None:
    """CPU time a thread has used (ns), from Linux's schedstat; None elsewhere."""
    try:
        return int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    args = parse_args(argv)
    command = command_line()
    threads = apply_threads(args.threads)
    methods = select_methods(args.methods)
    machine = machine_info(args.device)
    machine["load_average_start"] = _load()
    print(f"command: {command}")
    print(describe_machine(machine) + f"; load average {machine['load_average_start']}")
    print(f"source: generated {args.width}x{args.height} MJPG video, {args.frames} frames looped; "
          f"{args.seconds:g} s measured per run after {args.warmup:g} s warm-up\n", flush=True)

    rows, errors = [], {}
    with tempfile.TemporaryDirectory(prefix="inspector-live-bench-") as tmp:
        work = Path(tmp)
        video = make_video(work / "camera.avi", args)
        for method in methods:
            try:
                rows.append(measure(method, args, video, work))
            except Exception as e:  # noqa: BLE001 — one broken method must not cost the others' results
                print(f"[{method}] FAILED: {type(e).__name__}: {e}", flush=True)
                errors[method] = f"{type(e).__name__}: {e}"

    machine["load_average_end"] = _load()
    columns = [
        ("method", "method"), ("size", "px"),
        ("camera_fps", f"fps @{args.fps:g}"), ("camera_dropped_pct", "dropped %"),
        ("camera_p50_ms", "p50 ms"), ("camera_p95_ms", "p95 ms"),
        ("max_fps", "max fps"), ("max_p50_ms", "max p50"), ("max_p95_ms", "max p95"),
        ("inference_ms", "infer ms"), ("cpu_infer_ms", "cpu/frame"), ("cpu_capture_ms", "capture cpu"),
        ("idle_fps_estimate", "idle fps est."), ("meets_target", "target"),
    ]
    print()
    print(format_table(rows, columns))
    print(
        f"\nfps @{args.fps:g} = frames inspected per second with the video played as a {args.fps:g} fps camera (newest frame wins);"
        "\nmax = read as fast as the loop takes frames (none dropped); latency = capture -> result committed to the store."
        "\ncpu/frame, capture cpu = CPU time per frame of the inference thread (score + store) and of the capture thread"
        "\n(decode); idle fps est. = 1000 / the larger: the rate a machine with nothing else running could sustain."
        f"\ntarget: >= {TARGET_FPS:g} fps and p95 <= {TARGET_P95_MS:g} ms."
        f"\nload average at the start {machine['load_average_start']}, at the end {machine['load_average_end']}"
        " (other work on the machine slows every number here)."
    )
    out = write_results(args.out, {
        "benchmark": "live",
        "command": command,
        "machine": machine,
        "threads": threads,
        "settings": {k: getattr(args, k) for k in ("image_size", "fps", "seconds", "warmup", "frames", "train_images", "epochs", "width", "height")},
        "target": {"fps": TARGET_FPS, "p95_ms": TARGET_P95_MS},
        "results": rows,
        "errors": errors,
    })
    return finish(errors, out, command)


if __name__ == "__main__":
    raise SystemExit(main())
