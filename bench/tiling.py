"""Large camera frames: does a defect a few pixels wide in a 5 MP frame get found, and how long
does a frame take? Each method is trained on good frames whole (squashed to the model's input)
and in tiles, then scores clean frames and frames with one thin scratch.

The frames are synthetic (brushed metal: grain along one direction, a slow change of light;
the scratch is 2-4 px wide and 30-60 px long), because no set of real 5 MP frames is available
offline: the figures say what tiling recovers, not how a real part looks.

    INSPECTOR_THREADS=2 python bench/tiling.py --methods patchcore --frame 2048x2448 --tile 256 --image-size 128
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_common_arguments, apply_threads, command_line, default_out, describe_machine, format_table, machine_info, select_methods, write_results


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--frame", default="2048x2448", help="frame size HxW (default 2048x2448, 5 MP)")
    parser.add_argument("--tile", type=int, default=256, help="tile side in frame pixels (default 256)")
    parser.add_argument("--image-size", type=int, default=128, help="model input size (default 128)")
    parser.add_argument("--train-frames", type=int, default=20)
    parser.add_argument("--test-frames", type=int, default=10, help="clean frames, and as many with a scratch (default 10)")
    return parser.parse_args(argv)


def frame(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    import cv2

    grain = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), sigmaX=6, sigmaY=0.8)
    light = np.linspace(-12, 12, width, dtype=np.float32)[None, :]
    return np.clip(128 + 14 * grain / grain.std() + light, 0, 255).astype(np.uint8)


def scratched(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    h, w = image.shape
    out = image.copy()
    x, y = int(rng.integers(100, w - 100)), int(rng.integers(100, h - 100))
    length, angle = rng.uniform(30, 60), rng.uniform(0, np.pi)
    end = (int(x + length * np.cos(angle)), int(y + length * np.sin(angle)))
    cv2.line(out, (x, y), end, int(rng.integers(10, 40)), int(rng.integers(2, 5)))
    return out


def main(argv=None) -> int:
    import cv2

    from inspector.engine import metrics
    from inspector.engine.decision import ng_mask
    from inspector.engine.predictor import Predictor
    from inspector.engine.trainer import TrainConfig, Trainer

    args = parse_args(argv)
    command = command_line()
    threads = apply_threads(args.threads)
    machine = machine_info(args.device)
    print(f"command: {command}\n{describe_machine(machine)}", flush=True)
    height, width = (int(v) for v in args.frame.lower().split("x"))
    rng = np.random.default_rng(args.seed)
    clean = [frame(rng, height, width) for _ in range(args.test_frames)]
    bad = [scratched(frame(rng, height, width), rng) for _ in range(args.test_frames)]
    results, rows = {}, []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.train_frames):
            cv2.imwrite(str(Path(folder) / f"good{i:03d}.png"), frame(rng, height, width))
        files = sorted(Path(folder).glob("*.png"))
        for method in select_methods(args.methods):
            for tile in (None, args.tile):
                started = time.perf_counter()
                bundle = Trainer(TrainConfig(method=method, image_size=args.image_size, seed=args.seed, device=args.device, tile=tile)).fit(files)
                train_s = time.perf_counter() - started
                predictor = Predictor(bundle, args.device)
                started = time.perf_counter()
                scores = [predictor.predict(im).score for im in clean + bad]
                ms = 1000 * (time.perf_counter() - started) / len(scores)
                labels = np.r_[np.zeros(len(clean)), np.ones(len(bad))]
                flagged = ng_mask(scores, predictor.threshold)
                key = f"{method}/{'whole' if tile is None else f'tile{tile}'}"
                results[key] = {"image_auroc": metrics.auroc(labels, scores), "detected": float(flagged[len(clean):].mean()),
                                "false_alarms": float(flagged[: len(clean)].mean()), "train_s": train_s, "ms_per_frame": ms,
                                "tiles_per_frame": len(bundle.info.tiling.boxes(height, width)) if tile else 1}
                rows.append({"run": key, **{k: round(v, 3) for k, v in results[key].items()}})
                print(f"[{key}] {rows[-1]}", flush=True)
    columns = [("run", "method / scoring"), ("tiles_per_frame", "tiles per frame"), ("image_auroc", "image AUROC"), ("detected", "scratches found"),
               ("false_alarms", "false alarms"), ("train_s", "train s"), ("ms_per_frame", "ms / frame")]
    print(format_table(rows, columns))
    path = write_results(args.out or default_out("tiling"), {"benchmark": "tiling", "command": command, "machine": machine, "threads": threads,
                                                             "frame": [height, width], "tile": args.tile, "image_size": args.image_size,
                                                             "synthetic": True, "results": results})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
