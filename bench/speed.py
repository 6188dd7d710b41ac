"""Speed benchmark: training images/s and inference images/s (batch 1 and 32) per method and size.

Training speed is read from the ``Trainer``'s own progress events: a short run on real
images, timing the steps after a warm-up. Inference goes through the ``Predictor`` (the
app's only scoring path): ``predict_batch`` on full-size 300×300 images (resize in, map and
reconstruction back out: what the app does per frame) and ``score_at_model_size`` on images
already at the model's input size (the network plus the predictor's bookkeeping).

    INSPECTOR_THREADS=2 python bench/speed.py --sizes 64,128
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    OUT_DIR,
    add_common_arguments,
    apply_threads,
    command_line,
    default_out,
    describe_machine,
    finish,
    format_table,
    machine_info,
    method_params,
    select_methods,
    write_results,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--data", type=Path, default=OUT_DIR / "elpv", help="ELPV copy (made if missing); images for the runs")
    parser.add_argument("--sizes", default="64,128", help="comma-separated input sizes (default 64,128)")
    parser.add_argument("--image-size", type=int, default=None, help="one size only (overrides --sizes)")
    parser.add_argument("--batch-sizes", default="1,32", help="inference batch sizes (default 1,32)")
    parser.add_argument("--train-batch", type=int, default=32, help="training batch size (default 32)")
    parser.add_argument("--warmup", type=int, default=2, help="training steps not timed (default 2)")
    parser.add_argument("--steps", type=int, default=6, help="training steps timed (default 6)")
    parser.add_argument("--epochs", type=int, default=1, help="accepted for symmetry with quality.py; the run is --warmup + --steps steps")
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum time per inference measurement (default 3)")
    return parser.parse_args(argv)


def load_images(data: Path, n: int):
    """n real images (ELPV cells; materialised if missing), cycled if the folder has fewer."""
    from inspector.data import read_image

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quality import open_data

    paths = [s.path for s in open_data(data).train]
    return [read_image(paths[i % len(paths)]) for i in range(n)], paths


def train_speed(method: str, size: int, args, paths) -> tuple[float, object]:
    """Images/s of the Trainer's steps after the warm-up, from the median step time (one epoch of warmup + steps batches)."""
    from inspector.engine.events import TrainProgress
    from inspector.engine.trainer import TrainConfig, Trainer

    n_steps = args.warmup + args.steps
    holdout = 0.1
    n_images = int(n_steps * args.train_batch / (1 - holdout)) + 2
    stamps: list[float] = []

    def on_event(event) -> None:
        if isinstance(event, TrainProgress) and event.phase == "train":
            stamps.append(time.perf_counter())

    config = TrainConfig(
        method=method, image_size=size, epochs=1, batch_size=args.train_batch, seed=args.seed, device=args.device,
        holdout_fraction=holdout, params=method_params(method, args.param),
    )
    bundle = Trainer(config, on_event=on_event).fit(paths[:n_images])
    if len(stamps) < args.warmup + 2:
        raise SystemExit(f"{method}: only {len(stamps)} training steps ran; use more images or fewer --warmup")
    # stamps[i] is taken right after step i; the median step time is robust to other work on a shared machine
    durations = [b - a for a, b in zip(stamps[max(args.warmup - 1, 0) :], stamps[max(args.warmup, 1) :])]
    seconds = statistics.median(durations)
    steps = 1
    return steps * args.train_batch / seconds, bundle


def inference_speed(predictor, images, batch: int, seconds: float, at_model_size: bool) -> float:
    """Images/s over repeated calls for at least ``seconds`` (after one warm-up call): the best of 3 chunks,
    since other work on the machine only ever slows a chunk down."""
    chunk = images[:batch]

    def call() -> None:
        if at_model_size:
            predictor.score_at_model_size(chunk, batch_size=batch)
        else:
            predictor.predict_batch(chunk)

    call()
    rates = []
    for _ in range(3):
        done, started = 0, time.perf_counter()
        while True:
            call()
            done += len(chunk)
            elapsed = time.perf_counter() - started
            if elapsed >= seconds / 3:
                break
        rates.append(done / elapsed)
    return max(rates)


def measure(method: str, size: int, args, images, paths, batches, threads) -> dict:
    from inspector.engine.predictor import Predictor
    from inspector.engine.preprocess import resize_to_model

    train_rate, bundle = train_speed(method, size, args, paths)
    predictor = Predictor(bundle, args.device)
    channels = bundle.info.channels
    small = [resize_to_model(im, predictor.model.input_size(*im.shape[:2]), channels) for im in images]
    row = {"method": method, "size": size, "threads": threads, "train": train_rate}
    for b in batches:
        row[f"e2e_b{b}"] = inference_speed(predictor, images, b, args.seconds, at_model_size=False)
        row[f"model_b{b}"] = inference_speed(predictor, small, b, args.seconds, at_model_size=True)
    print(
        f"[{method} {size}px] train {train_rate:.1f} img/s; "
        + "; ".join(f"batch {b}: {row[f'e2e_b{b}']:.1f} img/s end-to-end, {row[f'model_b{b}']:.1f} at model size" for b in batches),
        flush=True,
    )
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    command = command_line()  # before --threads sets the variable, so it is not printed twice
    threads = apply_threads(args.threads, steady_memory=not args.no_steady_memory)
    methods = select_methods(args.methods)
    sizes = [args.image_size] if args.image_size else [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    images, paths = load_images(args.data, max(batches))
    machine = machine_info(args.device)
    print(f"command: {command}")
    print(describe_machine(machine), "\n", flush=True)

    rows, errors = [], {}
    for method in methods:
        for size in sizes:
            try:
                row = measure(method, size, args, images, paths, batches, threads)
            except Exception as e:  # noqa: BLE001 — one broken method must not cost the others' results
                print(f"[{method} {size}px] FAILED: {type(e).__name__}: {e}", flush=True)
                errors[f"{method}@{size}"] = f"{type(e).__name__}: {e}"
                continue
            rows.append(row)

    columns = [("method", "method"), ("size", "px"), ("threads", "threads"), ("train", "train img/s")]
    for b in batches:
        columns += [(f"e2e_b{b}", f"infer b{b} img/s"), (f"model_b{b}", f"model-size b{b}")]
    print()
    print(format_table(rows, columns))
    print(
        "\ninfer = Predictor.predict_batch on 300x300 images (resize, score, map + reconstruction back to 300x300);"
        "\nmodel-size = Predictor.score_at_model_size on images already at the input size."
        "\ntrain = batch / median step time after the warm-up; inference = best of 3 timed chunks."
    )
    out = write_results(
        args.out or default_out("speed"),
        {
            "benchmark": "speed",
            "command": command,
            "machine": machine,
            "threads": threads,
            "settings": {"warmup": args.warmup, "steps": args.steps, "train_batch": args.train_batch, "seconds": args.seconds},
            "results": rows,
            "errors": errors,
        },
    )
    return finish(errors, out, command)


if __name__ == "__main__":
    raise SystemExit(main())
