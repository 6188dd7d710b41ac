"""Exported runtimes against torch eager: batch-1 speed on the same cores, and the parity export stores.

Per method: a short training run on ELPV cells (speed does not depend on how well it is
trained), ``inspector export`` to ONNX (parity measured on held-out cells and synthetic defects
painted on them), then the same Predictor calls timed on torch, ONNX Runtime and OpenVINO in one
process at the same thread count: images/s at batch 1 at the model's input size with and
without the reconstruction, and the end-to-end rate on 300×300 cells.

    python bench/runtimes.py --threads 1 --image-size 64
    python bench/runtimes.py --threads 2 --methods patchcore,seg-skip-ganomaly
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    add_common_arguments,
    apply_threads,
    command_line,
    default_out,
    describe_machine,
    finish,
    format_table,
    machine_info,
    select_methods,
    write_results,
)
from speed import load_images, train_speed

TARGET_SPEEDUP = 2.0  # issue 20: every exported method at least 2x torch eager at batch 1 on the same core


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parent / "out" / "elpv", help="ELPV copy (made if missing)")
    parser.add_argument("--image-size", type=int, default=64, help="model input size (default 64)")
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="training steps (default 3: speed only)")
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum time per measurement (default 3)")
    return parser.parse_args(argv)


def rate(predictor, images, seconds: float, reconstruct: bool, at_model_size: bool) -> float:
    """Images/s at batch 1: the best of 3 chunks of at least ``seconds`` / 3 (other work only slows a chunk)."""
    import time

    def call(image) -> None:
        if at_model_size:
            predictor.backend.score(to_array([image]), reconstruct)
        else:
            predictor.predict(image, reconstruct=reconstruct)

    from inspector.engine.preprocess import to_array

    call(images[0])
    best = 0.0
    for _ in range(3):
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 3:
            call(images[done % len(images)])
            done += 1
        best = max(best, done / (time.perf_counter() - started))
    return best


def measure(method: str, args, images, paths, threads: int) -> list[dict]:
    from inspector.engine.export import export
    from inspector.engine.predictor import Predictor
    from inspector.engine.preprocess import resize_to_model

    _, bundle = train_speed(method, args.image_size, args, paths)
    folder = Path(tempfile.mkdtemp(prefix="runtimes-"))
    exported = export(bundle, folder / method, "onnx", images=images[:24]).model
    small = [resize_to_model(im, bundle.info.image_size, bundle.info.channels) for im in images]
    rows = []
    torch_rate = None
    for runtime in ["torch", *exported.runtimes()]:
        predictor = Predictor(bundle, "cpu") if runtime == "torch" else Predictor(exported, "cpu", runtime)
        row = {"method": method, "runtime": runtime, "threads": threads,
               "model_b1": rate(predictor, small, args.seconds, True, True),
               "lean_b1": rate(predictor, small, args.seconds, False, True),
               "e2e_b1": rate(predictor, images, args.seconds, False, False)}
        torch_rate = torch_rate or row["model_b1"]
        row["speedup"] = row["model_b1"] / torch_rate
        if runtime != "torch":
            p = exported.parity["runtimes"][f"{runtime}/score"]
            row |= {"flips": p["flips"], "score_diff": f"{p['max_score_diff_relative']:.1e}", "map_diff": f"{p['max_map_diff_relative']:.1e}"}
        print(f"[{method} {runtime}] {row['model_b1']:.1f} img/s at model size ({row['speedup']:.2f}x torch), "
              f"{row['lean_b1']:.1f} without reconstruction, {row['e2e_b1']:.1f} end-to-end", flush=True)
        rows.append(row)
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    command = command_line()
    threads = apply_threads(args.threads)
    args.device = "cpu"
    from inspector.engine.export import NOT_EXPORTABLE

    methods = [m for m in select_methods(args.methods) if m not in NOT_EXPORTABLE]
    images, paths = load_images(args.data, 64)
    machine = machine_info("cpu")
    print(f"command: {command}")
    print(describe_machine(machine), "\n", flush=True)
    rows, errors = [], {}
    for method in methods:
        try:
            rows += measure(method, args, images, paths, threads)
        except Exception as e:  # noqa: BLE001 — one broken method must not cost the others' results
            print(f"[{method}] FAILED: {type(e).__name__}: {e}", flush=True)
            errors[method] = f"{type(e).__name__}: {e}"
    columns = [("method", "method"), ("runtime", "runtime"), ("threads", "threads"), ("model_b1", "b1 img/s"),
               ("lean_b1", "b1 no recon"), ("e2e_b1", "b1 300px e2e"), ("speedup", "x torch"),
               ("flips", "flips"), ("score_diff", "score diff"), ("map_diff", "map diff")]
    print()
    print(format_table(rows, columns))
    print(f"\nb1 = backend.score on one image at the model's size (with reconstruction); no recon = the score graph;"
          f"\ne2e = Predictor.predict on a 300x300 cell without reconstruction; x torch = b1 against torch eager;"
          f"\ntarget: every exported method >= {TARGET_SPEEDUP:g}x torch at batch 1; diffs relative to the model's scale.")
    out = write_results(default_out("runtimes") if args.out is None else args.out,
                        {"benchmark": "runtimes", "command": command, "machine": machine, "threads": threads,
                         "image_size": args.image_size, "results": rows, "errors": errors})
    return finish(errors, out, command)


if __name__ == "__main__":
    raise SystemExit(main())
