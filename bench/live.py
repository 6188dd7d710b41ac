"""Live-mode benchmark: a 640×480 video source through the headless live loop, per method and
thread count, and where a live frame's time goes.

For each method a model is trained briefly (speed does not depend on how well it is trained)
at ``--image-size``; then, for each of ``--thread-counts`` (the cores live mode may use: its
inference workers, one torch thread each), the generated video runs through ``LiveInspector``
into a results store (NG frames written as images, as on the line) in two ways:

* **camera**: the video played at ``--fps`` (30 by default) like a camera; the newest frame
  wins. Reported: the sustained inspection rate, the share of camera frames dropped, and the
  frame latency (capture → result committed) p50 / p95.
* **max**: the video read as fast as the loop takes it (no frame dropped): the highest
  sustained rate, and its latency (includes frames waiting for a free worker).

The first ``--warmup`` seconds of each run are not counted; ``--repeats`` runs every thread
count again, alternating, and reports the median (the machine may be shared).

The **stage profile** then times each stage of a live frame, one frame at a time on one thread
on one torch thread, as a worker does: capture and decode, ROI crop, resize, the model, the map's
post-processing (the rest of ``Predictor.predict``), the defect regions, an NG frame's image
encoding and storing (both in the commit thread, in capture order), the line outputs
(the live loop's notice, and the CPU of one ``http+server://`` sink's delivery thread per verdict)
and the heat overlay the Live page draws for a shown frame; also page faults per frame of each.
The model and resize are timed by wrapping the predictor's backend and resize function here,
for the profile only: nothing in the app times itself.

    python bench/live.py --methods patchcore,seg-skip-ganomaly          # 1 and 2 threads
    python bench/live.py --methods ganomaly --thread-counts 1 --seconds 20
    python bench/live.py --methods patchcore --no-steady-memory         # glibc's malloc as it comes
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import sys
import tempfile
import threading
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

TARGET_FPS = 30.0  # a 30 fps camera kept: every frame inspected (0 % dropped) ...
TARGET_P95_MS = 35.0  # ... each within this of its capture (p95)
TARGET_MAX_FPS = {1: 60.0, 2: 100.0}  # the fastest live rate on one core and on two
STAGES = ("capture + decode", "ROI crop", "resize", "model", "map post-processing", "regions", "NG image encoding", "store",
          "line outputs: notice", "line outputs: sink thread CPU", "heat overlay (Live page)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.set_defaults(out=OUT_DIR / "live.json")
    parser.add_argument("--image-size", type=int, default=64, help="model input size (default 64)")
    parser.add_argument("--thread-counts", default="1,2", help="cores live mode uses, one run each (default 1,2; --threads: that one)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each thread count, alternating; the median is reported (default 1)")
    parser.add_argument("--profile-frames", type=int, default=150, help="frames of the stage profile (default 150; 0: no profile)")
    parser.add_argument("--roi", default=None, help="region of interest x,y,w,h (default: the whole frame)")
    parser.add_argument("--fps", type=float, default=30.0, help="camera frame rate of the 'camera' run (default 30)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run (default 8)")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds not counted at the start of a run (default 1.5)")
    parser.add_argument("--frames", type=int, default=90, help="frames in the generated video (default 90, looped)")
    parser.add_argument("--train-images", type=int, default=48, help="images for the short training (default 48)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (default 1)")
    parser.add_argument("--runtime", default="torch", choices=("torch", "onnxruntime", "openvino"),
                        help="torch (default), or export the model first and run it on this runtime (one thread per worker)")
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
    from inspector.engine.live import LiveInspector, parse_roi
    from inspector.engine.results_store import ResultsStore

    store = ResultsStore(db)
    stamps: list[tuple[float, float, float]] = []  # (done time, latency, inference)
    source = VideoFileSource(video, loop=True, fps=args.fps if realtime else None)
    live = LiveInspector(source, predictor, store, roi=parse_roi(args.roi),
                         on_result=lambda r: stamps.append((time.perf_counter(), r.latency_ms, r.inference_ms)))
    started = time.perf_counter()
    live.start()
    time.sleep(args.warmup)
    threads = {t.name: t.native_id for t in live._threads}
    cpu0 = {name: _cpu_ns(tid) for name, tid in threads.items()}
    dropped0, faults0 = live.stats().dropped, _faults()
    n0 = len(stamps)
    time.sleep(args.seconds)
    n1 = len(stamps)
    cpu1 = {name: _cpu_ns(tid) for name, tid in threads.items()}
    dropped1, faults1 = live.stats().dropped, _faults()
    workers = live.stats().workers
    live.stop()
    store.close()
    window = stamps[n0:n1]
    if len(window) < 2:
        raise RuntimeError(f"only {len(window)} frames inspected in {args.seconds} s")
    span = window[-1][0] - window[0][0]
    latencies = np.array([w[1] for w in window])
    delivered = len(window) + (dropped1 - dropped0)
    cpu = {name: (cpu1[name] - cpu0[name]) / 1e6 if cpu0[name] is not None and cpu1[name] is not None else None for name in threads}
    inference = [v for name, v in cpu.items() if name.startswith("live-inference")]
    inference_cpu = sum(inference) if inference and None not in inference else None
    capture_cpu, commit_cpu = cpu.get("live-capture"), cpu.get("live-commit")
    return {
        "workers": workers,
        "inference_cpu_ms": inference_cpu / max(n1 - n0, 1) if inference_cpu is not None else None,
        "commit_cpu_ms": commit_cpu / max(n1 - n0, 1) if commit_cpu is not None else None,
        "capture_cpu_ms": capture_cpu / max(delivered, 1) if capture_cpu is not None else None,
        "faults_per_frame": (faults1 - faults0) / max(n1 - n0, 1),
        "fps": (len(window) - 1) / span,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "inference_ms": statistics.median(w[2] for w in window),
        "dropped_pct": 100.0 * (dropped1 - dropped0) / max(delivered, 1),
        "frames": len(window),
        "errors": live.stats().errors,
        "elapsed_s": time.perf_counter() - started,
    }


def measure(method: str, args, video: Path, work: Path, thread_counts: list[int]) -> list[dict]:
    """One row per thread count: the camera and max runs (medians over ``--repeats``)."""
    from inspector.engine.device import limit_threads
    from inspector.engine.predictor import Predictor

    t0 = time.perf_counter()
    bundle = train(method, args, work / "train")
    train_s = time.perf_counter() - t0
    model = bundle
    if args.runtime != "torch":  # as a line PC runs it: the export, parity measured on the training cells
        from inspector.data import read_image
        from inspector.data.images import list_images
        from inspector.engine.export import export

        good = [read_image(p) for p in list_images(work / "train")[:16]]
        model = export(bundle, work / f"{method}-export", images=good, force=True).model
    runs: dict[int, list[tuple[dict, dict]]] = {t: [] for t in thread_counts}
    for repeat in range(args.repeats):
        for threads in thread_counts:
            os.environ["INSPECTOR_THREADS"] = str(threads)
            limit_threads()  # as `inspector live` starts: the model is loaded on the main thread with these
            predictor = Predictor(model, args.device, args.runtime, threads=1)  # live_controller.load's one thread
            tag = f"{method}-t{threads}-r{repeat}"
            camera = run_live(predictor, video, work / f"{tag}-camera.sqlite", args, realtime=True)
            fastest = run_live(predictor, video, work / f"{tag}-max.sqlite", args, realtime=False)
            runs[threads].append((camera, fastest))
            print(f"[{method} {args.image_size}px, {threads} thread(s), run {repeat + 1}] camera {args.fps:g} fps: "
                  f"inspected {camera['fps']:.1f} fps, dropped {camera['dropped_pct']:.1f} %, latency p50 "
                  f"{camera['p50_ms']:.1f} ms p95 {camera['p95_ms']:.1f} ms; max {fastest['fps']:.1f} fps (p50 "
                  f"{fastest['p50_ms']:.1f} / p95 {fastest['p95_ms']:.1f} ms), inference {fastest['inference_ms']:.1f} ms, "
                  f"CPU {fastest['inference_cpu_ms'] or 0:.1f} ms/frame in {fastest['workers']} worker(s), commit "
                  f"{fastest['commit_cpu_ms'] or 0:.1f}, capture {fastest['capture_cpu_ms'] or 0:.1f} ms/frame, "
                  f"{fastest['faults_per_frame']:.0f} page faults/frame", flush=True)
    rows = []
    for threads, pairs in runs.items():
        median = _medians(pairs)
        row = {"method": method, "runtime": args.runtime, "size": args.image_size, "threads": threads, "workers": pairs[0][0]["workers"],
               "camera_fps": median(0, "fps"), "camera_dropped_pct": median(0, "dropped_pct"),
               "camera_p50_ms": median(0, "p50_ms"), "camera_p95_ms": median(0, "p95_ms"),
               "max_fps": median(1, "fps"), "max_p50_ms": median(1, "p50_ms"), "max_p95_ms": median(1, "p95_ms"),
               "inference_ms": median(1, "inference_ms"), "cpu_infer_ms": median(1, "inference_cpu_ms"),
               "cpu_commit_ms": median(1, "commit_cpu_ms"), "cpu_capture_ms": median(1, "capture_cpu_ms"), "faults_per_frame": median(1, "faults_per_frame"),
               "train_s": train_s, "runs": [{"camera": c, "max": m} for c, m in pairs]}
        row["camera_kept"] = row["camera_dropped_pct"] == 0 and row["camera_p95_ms"] <= TARGET_P95_MS
        row["max_target"] = row["max_fps"] >= TARGET_MAX_FPS.get(threads, 0.0)
        rows.append(row)
    if args.profile_frames:
        os.environ["INSPECTOR_THREADS"] = str(thread_counts[0])
        profile = profile_stages(Predictor(model, args.device, args.runtime, threads=1), video, work / f"{method}-profile.sqlite", args)
        for row in rows:
            row["profile"] = profile
        print(f"[{method} {args.image_size}px] stage profile (ms per frame, page faults per frame):")
        print(format_table([{"stage": k, **v} for k, v in profile.items()],
                           [("stage", "stage"), ("ms", "ms"), ("p95_ms", "p95 ms"), ("ms_recon", "with reconstruction"),
                            ("faults", "faults")]), flush=True)
    return rows


def _medians(pairs: list[tuple[dict, dict]]):
    """``median(run, key)``: the median of ``key`` over the repeats of the camera (0) or max (1) run."""
    def median(run: int, key: str) -> float | None:
        values = [pair[run][key] for pair in pairs if pair[run][key] is not None]
        return statistics.median(values) if values else None
    return median


def profile_stages(predictor, video: Path, db: Path, args) -> dict[str, dict[str, float | None]]:
    """Median and p95 ms and mean page faults per frame of each stage (``STAGES``), done one after another
    on one thread as a live worker does (one torch thread); resize, model and post-processing also
    with the reconstruction (``ms_recon``), as live mode scored before it stopped asking for it."""
    result: dict[str, dict[str, float | None]] = {}
    thread = threading.Thread(target=lambda: result.update(_profile(predictor, video, db, args)), name="live-profile")
    thread.start()
    thread.join()
    return result


def _profile(predictor, video: Path, db: Path, args) -> dict[str, dict[str, float | None]]:
    from inspector.data.sources import VideoFileSource
    from inspector.engine import predictor as predictor_module
    from inspector.engine.device import live_threads
    from inspector.engine.live import LiveResult, crop, parse_roi
    from inspector.engine.results_store import ResultsStore
    from inspector.engine.sinks import LineOutputs

    live_threads()
    roi = parse_roi(args.roi)
    samples: dict[str, list[tuple[float, int]]] = {}  # stage -> (ms, page faults) per frame
    last: dict[str, tuple[float, int]] = {}  # the hooked stages' last call

    def start() -> tuple[float, int]:
        return time.perf_counter(), _thread_faults()

    def since(mark: tuple[float, int]) -> tuple[float, int]:
        return (time.perf_counter() - mark[0]) * 1000, _thread_faults() - mark[1]

    def hooked(stage: str, fn):
        def wrapper(*a, **k):
            mark = start()
            try:
                return fn(*a, **k)
            finally:
                last[stage] = since(mark)
        return wrapper

    store = ResultsStore(db)
    with socket.socket() as s:  # a free port for the sink
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outputs = LineOutputs.open([f"http+server://127.0.0.1:{port}"], store, "bench")
    outputs.start()
    sink_thread = next(t for t in threading.enumerate() if t.name.startswith("sink "))
    stop = threading.Event()
    frames = VideoFileSource(video, loop=True).frames(stop)
    resize = predictor_module.resize_to_model
    predictor_module.resize_to_model = hooked("resize", resize)  # the profile's own hooks, undone below
    predictor.backend.score = hooked("model", predictor.backend.score)
    try:
        for i in range(-5, args.profile_frames):  # 5 frames of warm-up, not counted
            if i == 0:
                samples.clear()
                sink_cpu0 = _cpu_ns(sink_thread.native_id)
            took: dict[str, tuple[float, int]] = {}
            mark = start()
            frame = next(frames)
            took["capture + decode"] = since(mark)
            mark = start()
            region = np.ascontiguousarray(crop(frame.image, roi))
            took["ROI crop"] = since(mark)
            for suffix, reconstruct in ((" (recon)", True), ("", False)):  # as live mode scored before, and now
                mark = start()
                prediction = predictor.predict(region, reconstruct=reconstruct)
                total_ms, total_faults = since(mark)
                (model_ms, model_faults), (resize_ms, resize_faults) = last.pop("model"), last.pop("resize")
                took["model" + suffix], took["resize" + suffix] = (model_ms, model_faults), (resize_ms, resize_faults)
                took["map post-processing" + suffix] = (total_ms - model_ms - resize_ms, total_faults - model_faults - resize_faults)
            mark = start()
            regions = prediction.regions
            took["regions"] = since(mark)
            mark = start()  # as the commit thread does: only an NG frame's image is encoded
            image = store.encode(prediction.image) if prediction.decision == "NG" else prediction.image
            took["NG image encoding"] = since(mark)
            mark = start()  # then the row (and an NG frame's file) written
            store.record(source=frame.source, frame_id=frame.frame_id, frame_name=frame.name, timestamp=frame.timestamp,
                         model="bench", model_version=1, score=prediction.score, threshold=prediction.threshold,
                         decision=prediction.decision, image=image, roi=roi, regions=regions, rule=prediction.reason)
            took["store"] = since(mark)
            mark = start()
            outputs.stored()
            took["line outputs: notice"] = since(mark)
            mark = start()
            LiveResult(frame, prediction, roi, "bench", 1, None, 0.0, 0.0, i + 1).overlay(0.5)
            took["heat overlay (Live page)"] = since(mark)
            for stage, value in took.items():
                samples.setdefault(stage, []).append(value)
        outputs.drain(10.0)
        sink_cpu = _cpu_ns(sink_thread.native_id)
    finally:
        predictor_module.resize_to_model = resize
        del predictor.backend.score  # the instance's hook goes: the class's method again
        stop.set()
        outputs.stop(0.0)
        store.close()

    def stage_row(stage: str) -> dict[str, float | None]:
        ms = [v[0] for v in samples[stage]]
        recon = samples.get(stage + " (recon)")
        return {"ms": statistics.median(ms), "p95_ms": float(np.percentile(ms, 95)),
                "ms_recon": statistics.median(v[0] for v in recon) if recon else statistics.median(ms),
                "faults": float(np.mean([v[1] for v in samples[stage]]))}

    profile = {stage: stage_row(stage) for stage in STAGES if stage in samples}
    cpu = (sink_cpu - sink_cpu0) / 1e6 / args.profile_frames if None not in (sink_cpu, sink_cpu0) else float("nan")
    profile["line outputs: sink thread CPU"] = {"ms": cpu, "p95_ms": None, "ms_recon": cpu, "faults": None}
    in_loop = [v for k, v in profile.items() if k != "heat overlay (Live page)"]  # the page draws at most ~15 a second
    profile["a live frame (no overlay)"] = {key: sum(v[key] or 0.0 for v in in_loop) for key in ("ms", "ms_recon", "faults")}
    profile["a live frame (no overlay)"]["p95_ms"] = None
    return {stage: profile[stage] for stage in [*STAGES, "a live frame (no overlay)"]}


def _thread_faults() -> int:
    """Minor page faults of the calling thread so far (the process's where Linux's per-thread count is missing)."""
    return resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)).ru_minflt


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


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
    apply_threads(args.threads, steady_memory=not args.no_steady_memory)
    thread_counts = [args.threads] if args.threads else [int(t) for t in args.thread_counts.split(",")]
    methods = select_methods(args.methods)
    machine = machine_info(args.device)
    machine["load_average_start"] = _load()
    machine["steady_memory"] = not args.no_steady_memory
    print(f"command: {command}")
    print(describe_machine(machine) + f"; load average {machine['load_average_start']}")
    print(f"source: generated {args.width}x{args.height} MJPG video, {args.frames} frames looped; "
          f"{args.seconds:g} s measured per run after {args.warmup:g} s warm-up; live mode on {thread_counts} core(s); "
          f"glibc malloc {'as it comes' if args.no_steady_memory else 'steady (engine.device.steady_memory)'}\n", flush=True)

    rows, errors = [], {}
    with tempfile.TemporaryDirectory(prefix="inspector-live-bench-") as tmp:
        work = Path(tmp)
        video = make_video(work / "camera.avi", args)
        for method in methods:
            try:
                rows.extend(measure(method, args, video, work, thread_counts))
            except Exception as e:  # noqa: BLE001 — one broken method must not cost the others' results
                print(f"[{method}] FAILED: {type(e).__name__}: {e}", flush=True)
                errors[method] = f"{type(e).__name__}: {e}"

    machine["load_average_end"] = _load()
    columns = [
        ("method", "method"), ("runtime", "runtime"), ("size", "px"), ("threads", "cores"), ("workers", "workers"),
        ("camera_fps", f"fps @{args.fps:g}"), ("camera_dropped_pct", "dropped %"),
        ("camera_p50_ms", "p50 ms"), ("camera_p95_ms", "p95 ms"),
        ("max_fps", "max fps"), ("max_p50_ms", "max p50"), ("max_p95_ms", "max p95"),
        ("inference_ms", "infer ms"), ("cpu_infer_ms", "cpu/frame"), ("cpu_commit_ms", "commit cpu"), ("cpu_capture_ms", "capture cpu"),
        ("faults_per_frame", "faults/frame"), ("camera_kept", "camera kept"), ("max_target", "max target"),
    ]
    print()
    print(format_table(rows, columns))
    print(
        f"\nfps @{args.fps:g} = frames inspected per second with the video played as a {args.fps:g} fps camera (newest frame wins);"
        "\nmax = read as fast as the loop takes frames (none dropped); latency = capture -> result committed to the store."
        "\ncpu/frame, commit cpu, capture cpu = CPU time per frame of the inference workers (score), of the commit thread"
        "\n(NG image encoding, store, report) and of the capture thread (decode);"
        "\nfaults/frame = the process's minor page faults per frame inspected in the max run."
        f"\ncamera kept: 0 % dropped and p95 <= {TARGET_P95_MS:g} ms at {TARGET_FPS:g} fps; max target: "
        + ", ".join(f">= {v:g} fps on {k} core(s)" for k, v in TARGET_MAX_FPS.items()) + "."
        + (f" Medians of {args.repeats} runs each, thread counts alternating." if args.repeats > 1 else "")
        + f"\nload average at the start {machine['load_average_start']}, at the end {machine['load_average_end']}"
        " (other work on the machine slows every number here)."
    )
    out = write_results(args.out, {
        "benchmark": "live",
        "command": command,
        "machine": machine,
        "thread_counts": thread_counts,
        "settings": {k: getattr(args, k) for k in ("image_size", "fps", "seconds", "warmup", "frames", "train_images", "epochs",
                                                   "width", "height", "repeats", "profile_frames", "roi")},
        "target": {"fps": TARGET_FPS, "p95_ms": TARGET_P95_MS, "max_fps": TARGET_MAX_FPS},
        "results": rows,
        "errors": errors,
    })
    return finish(errors, out, command)


if __name__ == "__main__":
    raise SystemExit(main())
