"""GPU check: training with mixed precision, inference speed and CUDA-vs-CPU scores on a CUDA machine.

Run it whenever a GPU machine is lent (``bench/gpu_check.sh``) and record its figures in
bench/RESULTS.md; the project never needs a GPU. Without CUDA it says so in one line and exits 0.

For the default method and seg-skip-ganomaly at 128 px, each part bounded (a time cap or a fixed
number of images):

1. train: one epoch with the real ``Trainer`` on cuda with ``amp`` (mixed precision), at most
   ``--train-images`` images and ``--train-seconds`` seconds (cancelled past that: the rate of the
   steps done is kept, and the model is fitted again with 0 epochs so the other parts still run);
2. torch: ``Predictor.score_at_model_size`` images/s at batch 1, 32 and 256 on cuda
   (best of 3 chunks, ``--seconds`` per batch size);
3. CUDA vs CPU: the same images scored by the same model on cuda and on the cpu: the largest score
   difference (absolute, and relative to the model's scale as ``engine/export.py`` measures parity)
   and OK/NG flips; a flip or a relative difference above ``--tolerance`` fails the check;
4. ONNX Runtime CUDA: the model exported to ONNX (``engine.export.export``, its parity measured on
   the CPU runtimes as always), scored by ONNX Runtime's ``CUDAExecutionProvider`` at the same batch
   sizes and against the cpu torch scores; skipped with a line when ``onnxruntime-gpu`` is not
   installed (no CUDA provider).

    bench/gpu_check.sh                        # the whole check, under 5 minutes
    python bench/gpu_check.py --device cpu    # the same steps on the CPU, to try the script itself
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    OUT_DIR,
    command_line,
    default_out,
    describe_machine,
    finish,
    format_table,
    machine_info,
    write_results,
)

SIZE = 128
BATCHES = (1, 32, 256)
SECOND_METHOD = "seg-skip-ganomaly"
PARITY_IMAGES = 12  # good images the export's own parity is measured on (CPU runtimes)
NO_CUDA = "no CUDA device: nothing to check"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cuda (default); cpu runs the same steps to try the script (no GPU figures)")
    parser.add_argument("--methods", default=None, help=f"comma-separated (default: the default method and {SECOND_METHOD})")
    parser.add_argument("--data", type=Path, default=OUT_DIR / "elpv", help="ELPV copy (made if missing; else generated textures)")
    parser.add_argument("--train-images", type=int, default=512, help="images in the training epoch (default 512)")
    parser.add_argument("--train-seconds", type=float, default=45.0, help="cap on one method's training (default 45)")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch size (default 32)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per inference measurement (default 2)")
    parser.add_argument("--compare-images", type=int, default=64, help="images scored on both devices (default 64)")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="largest CUDA-vs-CPU score difference allowed, of the model's scale (default 1e-3)")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file (default bench/out/gpu-check-<time>.json)")
    return parser.parse_args(argv)


def load_images(data: Path, n: int) -> tuple[list[np.ndarray], str]:
    """n gray images: ELPV cells when the package or a copy is there, else generated textures
    (speed and device agreement do not depend on what the parts show)."""
    from inspector.data import elpv_available, read_image

    if (data / "train" / "good").is_dir() or elpv_available():
        from quality import open_data

        paths = [s.path for s in open_data(data).train]
        return [read_image(paths[i % len(paths)]) for i in range(n)], f"ELPV ({data})"
    rng = np.random.default_rng(0)
    base = rng.normal(128, 30, (n, 32, 32)).clip(0, 255).astype(np.uint8)
    import cv2

    return [cv2.resize(b, (300, 300), interpolation=cv2.INTER_CUBIC) for b in base], "generated textures (no ELPV here)"


def train(method: str, images: list[np.ndarray], args) -> tuple[object, dict]:
    """One epoch on ``args.device`` with mixed precision, capped at ``--train-seconds``."""
    from inspector.data.images import write_image
    from inspector.engine.events import Cancelled, CancelToken, TrainProgress
    from inspector.engine.trainer import TrainConfig, Trainer

    stamps: list[tuple[float, int]] = []  # (time, images trained on so far)

    def on_event(event) -> None:
        if isinstance(event, TrainProgress) and event.phase == "train":
            stamps.append((time.perf_counter(), event.step * args.batch_size))

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        paths = []
        for i, image in enumerate(images[: args.train_images]):
            paths.append(Path(folder) / f"{i:04d}.png")
            write_image(paths[-1], image)
        config = TrainConfig(method=method, image_size=SIZE, epochs=1, batch_size=args.batch_size, device=args.device, amp=True)
        cancel = CancelToken()
        timer = threading.Timer(args.train_seconds, cancel.cancel)
        started = time.perf_counter()
        timer.start()
        capped = False
        try:
            bundle = Trainer(config, on_event=on_event, cancel=cancel).fit(paths)
        except Cancelled:  # past the cap: the steps done give the rate; 0 epochs give a model for the rest
            capped = True
            config = TrainConfig(method=method, image_size=SIZE, epochs=0, batch_size=args.batch_size, device=args.device)
            bundle = Trainer(config).fit(paths[:64])
        finally:
            timer.cancel()
    return bundle, {
        "train_images": len(paths),
        "train_s": time.perf_counter() - started,
        "train_img_s": rate_after_first(stamps),
        "train_capped": capped,
        "amp": args.device == "cuda",
    }


def rate_after_first(stamps: list[tuple[float, int]]) -> float | None:
    """Training images/s from (time, images done) after each step, leaving out the first step
    (CUDA's start-up, cuDNN's search, the first batch's allocations); None under two steps."""
    if len(stamps) < 2:
        return None
    (t0, n0), (t1, n1) = stamps[0], stamps[-1]
    return (n1 - n0) / max(t1 - t0, 1e-9)


def images_per_s(predictor, images: list[np.ndarray], batch: int, seconds: float) -> float:
    """Best of 3 chunks of repeated ``score_at_model_size`` calls on one batch after a warm-up
    call (other work on the machine only ever slows a chunk down)."""
    chunk = [images[i % len(images)] for i in range(batch)]

    def score() -> None:
        predictor.score_at_model_size(chunk, batch_size=batch)

    score()
    rates = []
    for _ in range(3):
        done, started = 0, time.perf_counter()
        while True:
            score()
            done += batch
            elapsed = time.perf_counter() - started
            if elapsed >= seconds / 3:
                break
        rates.append(done / elapsed)
    return max(rates)


def agreement(scores: np.ndarray, reference: np.ndarray, threshold: float) -> dict:
    """Largest score difference (absolute; relative to the model's scale, as export parity) and flips."""
    finite = np.isfinite(reference)
    diff = float(np.max(np.abs(np.where(finite, scores - reference, 0.0)), initial=0.0))
    scale = max(abs(threshold), float(np.max(np.abs(reference[finite]), initial=0.0)), 1e-12)
    flips = int(np.sum((scores > threshold) != (reference > threshold)))
    return {"max_diff": diff, "max_diff_relative": diff / scale, "flips": flips}


def check_method(method: str, images: list[np.ndarray], args, errors: dict[str, str]) -> dict:
    from inspector.engine.predictor import Predictor
    from inspector.engine.preprocess import resize_to_model

    bundle, row = train(method, images, args)
    row["method"] = method
    small = [resize_to_model(im, SIZE, bundle.info.channels) for im in images]
    compare = small[: args.compare_images]
    threshold = bundle.info.threshold.value

    on_device = Predictor(bundle, args.device)  # moves the network to the device; scored there first
    for b in BATCHES:
        row[f"torch_b{b}"] = images_per_s(on_device, small, b, args.seconds)
    device_scores = on_device.score_at_model_size(compare, batch_size=32)[0]
    cpu_scores = Predictor(bundle, "cpu").score_at_model_size(compare, batch_size=32)[0]  # the network back on the cpu
    torch_check = agreement(device_scores, cpu_scores, threshold)
    row.update({f"torch_{k}": v for k, v in torch_check.items()})
    if torch_check["flips"] or torch_check["max_diff_relative"] > args.tolerance:
        errors[f"{method} torch"] = (f"{args.device} vs cpu: {torch_check['flips']} flip(s), scores differ by "
                                     f"{torch_check['max_diff_relative']:.2g} of the scale (tolerance {args.tolerance:g})")
    print(f"[{method}] train {row['train_img_s'] or float('nan'):.1f} img/s{' (capped)' if row['train_capped'] else ''}; torch "
          + ", ".join(f"b{b} {row[f'torch_b{b}']:.0f}" for b in BATCHES)
          + f" img/s; {args.device} vs cpu: {torch_check['flips']} flips, max diff {torch_check['max_diff_relative']:.2g} of scale",
          flush=True)
    try:
        row.update(onnx_runtime(bundle, small, compare, cpu_scores, args, errors))
    except Exception as e:  # noqa: BLE001 — an export refused or a provider failing: the torch figures stand
        print(f"[{method}] onnxruntime FAILED: {type(e).__name__}: {e}", flush=True)
        errors[f"{method} onnxruntime"] = f"{type(e).__name__}: {e}"
        row["ort"] = f"failed: {type(e).__name__}"
    return row


def onnx_runtime(bundle, small, compare, cpu_scores, args, errors: dict[str, str]) -> dict:
    """The ONNX Runtime part: export, then its CUDA provider (the CPU one with ``--device cpu``)."""
    import onnxruntime as ort

    from inspector.engine.export import export
    from inspector.engine.predictor import Predictor

    method = bundle.info.method
    if args.device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"[{method}] ONNX Runtime has no CUDA provider here (pip install onnxruntime-gpu): that part skipped", flush=True)
        return {"ort": "skipped: no CUDAExecutionProvider"}
    with tempfile.TemporaryDirectory(prefix="gpu-check-onnx-") as folder:
        started = time.perf_counter()
        exported = export(bundle, Path(folder) / method, "onnx", images=small[:PARITY_IMAGES]).model
        predictor = Predictor(exported, args.device, "onnxruntime")
        row = {"ort": predictor.device, "ort_export_s": time.perf_counter() - started, "ort_graph_batch": exported.export.get("batch")}
        for b in BATCHES:
            row[f"ort_b{b}"] = images_per_s(predictor, small, b, args.seconds)
        check = agreement(predictor.score_at_model_size(compare, batch_size=32)[0], cpu_scores, exported.info.threshold.value)
    row.update({f"ort_{k}": v for k, v in check.items()})
    if check["flips"] or check["max_diff_relative"] > args.tolerance:
        errors[f"{method} onnxruntime"] = (f"onnxruntime on {row['ort']} vs torch on cpu: {check['flips']} flip(s), scores differ by "
                                           f"{check['max_diff_relative']:.2g} of the scale (tolerance {args.tolerance:g})")
    print(f"[{method}] onnxruntime on {row['ort']}: " + ", ".join(f"b{b} {row[f'ort_b{b}']:.0f}" for b in BATCHES)
          + f" img/s; vs cpu torch: {check['flips']} flips, max diff {check['max_diff_relative']:.2g} of scale", flush=True)
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    command = command_line()
    from inspector.models import DEFAULT_METHOD

    methods = [m.strip() for m in args.methods.split(",")] if args.methods else [DEFAULT_METHOD, SECOND_METHOD]
    images, source = load_images(args.data, max(max(BATCHES), args.train_images, args.compare_images))
    machine = machine_info(args.device)
    print(f"command: {command}")
    print(describe_machine(machine), f"\nimages: {source}, {SIZE} px\n", flush=True)

    out = args.out or default_out("gpu-check")
    rows, errors = [], {}

    def save() -> Path:  # after each method: a run stopped by gpu_check.sh's time bound keeps what it measured
        return write_results(out, {
            "benchmark": "gpu_check", "command": command, "machine": machine, "images": source, "size": SIZE,
            "settings": {k: v for k, v in vars(args).items() if k != "out"}, "results": rows, "errors": errors,
        })

    for method in methods:
        try:
            rows.append(check_method(method, images, args, errors))
        except Exception as e:  # noqa: BLE001 — one method failing must not cost the other's figures
            print(f"[{method}] FAILED: {type(e).__name__}: {e}", flush=True)
            errors[method] = f"{type(e).__name__}: {e}"
        save()

    columns = [("method", "method"), ("train_img_s", "train img/s (amp)")]
    columns += [(f"torch_b{b}", f"torch b{b}") for b in BATCHES] + [("torch_max_diff_relative", "torch vs cpu"), ("torch_flips", "flips")]
    columns += [(f"ort_b{b}", f"ORT b{b}") for b in BATCHES] + [("ort_max_diff_relative", "ORT vs cpu"), ("ort_flips", "flips")]
    print()
    print(format_table(rows, columns))
    print(f"\nimages/s at {SIZE} px through Predictor.score_at_model_size (best of 3 chunks); 'vs cpu': the largest score "
          "difference against torch on the cpu, of the model's scale.")
    return finish(errors, save(), command)


if __name__ == "__main__":
    raise SystemExit(main())
