"""Parts that are never placed identically: the false-alarm rate on good test images moved by up
to ±SHIFT px and turned by up to ±ANGLE degrees, against the same images unmoved, at each model's
stored threshold. Each method is trained on the ELPV good cells as bench/quality.py does.

Two views of a cell (``--view``):
- ``placed`` (default): the camera sees the whole cell on a dark field, ``--margin`` px on each
  side (as between a module's cells), and the cell moves within the view. Training and test
  images are all placed so; the copy is written next to ``--data``.
- ``cropped``: the image is the cell alone (ELPV as shipped); a moved cell leaves the frame and the
  uncovered border is filled by reflection, content no camera would see.

    INSPECTOR_THREADS=1 python bench/shift.py --methods patchcore,padim --image-size 128 [--align]
"""

from __future__ import annotations

import argparse
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
    format_table,
    machine_info,
    select_methods,
    write_results,
)
from quality import add_training_arguments, open_data, train


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--data", type=Path, default=OUT_DIR / "elpv", help="ELPV copy in MVTec layout (default bench/out/elpv)")
    add_training_arguments(parser, image_size=128)
    parser.add_argument("--shift", type=float, default=8.0, help="largest move in pixels of the original image (default 8)")
    parser.add_argument("--angle", type=float, default=3.0, help="largest turn in degrees (default 3)")
    parser.add_argument("--align", action="store_true", help="train the models with alignment (TrainConfig.align)")
    parser.add_argument("--view", choices=("placed", "cropped"), default="placed", help="see the module docstring (default placed)")
    parser.add_argument("--margin", type=int, default=24, help="dark field around a placed cell, px of the original image (default 24)")
    return parser.parse_args(argv)


def moved(image, rng, shift: float, angle: float, view: str = "placed"):
    """The image turned about its centre and moved; the uncovered border is the dark field
    (placed) or a reflection (cropped)."""
    import cv2

    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-angle, angle)), 1.0)
    matrix[:, 2] += rng.uniform(-shift, shift, 2)
    border = cv2.BORDER_CONSTANT if view == "placed" else cv2.BORDER_REFLECT_101
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)


def placed_copy(dataset, out: Path, margin: int):
    """The good train and test cells, each on a dark field ``margin`` px wide (written once)."""
    import cv2

    from inspector.data import open_dataset, read_image
    from inspector.data.datasets import GOOD

    done = out / ".complete"
    if not done.is_file():
        for split, samples in (("train", dataset.train), ("test", dataset.test)):
            folder = out / split / "good"
            folder.mkdir(parents=True, exist_ok=True)
            for s in samples:
                if s.label == GOOD:
                    cell = read_image(s.path)
                    cv2.imwrite(str(folder / (s.path.stem + ".png")), cv2.copyMakeBorder(cell, *[margin] * 4, cv2.BORDER_CONSTANT, value=0))
        done.write_text(f"margin {margin}\n")
    return open_dataset(out)


def measure(bundle, dataset, args) -> dict:
    import numpy as np

    from inspector.data import read_image
    from inspector.data.datasets import GOOD
    from inspector.engine.decision import ng_mask
    from inspector.engine.predictor import Predictor

    predictor = Predictor(bundle, args.device)
    good = [read_image(s.path) for s in dataset.test if s.label == GOOD]
    rng = np.random.default_rng(args.seed)
    shifted = [moved(im, rng, args.shift, args.angle, args.view) for im in good]

    def rate(images) -> float:
        scores = [p.score for i in range(0, len(images), 32) for p in predictor.predict_batch(images[i : i + 32])]
        return float(np.mean(ng_mask(scores, predictor.threshold)))

    still, moving = rate(good), rate(shifted)
    return {"n_good": len(good), "false_alarms": still, "false_alarms_moved": moving, "ratio": moving / still if still else float("inf")}


def main(argv=None) -> int:
    args = parse_args(argv)
    command = command_line()
    threads = apply_threads(args.threads)
    dataset = open_data(args.data)
    if args.view == "placed":
        dataset = placed_copy(dataset, args.data.with_name(f"{args.data.name}-placed-{args.margin}"), args.margin)
    machine = machine_info(args.device)
    print(f"command: {command}\n{describe_machine(machine)}", flush=True)
    results, rows = {}, []
    for method in select_methods(args.methods):
        started = time.perf_counter()
        bundle, seconds, _ = train(method, args, dataset)
        r = measure(bundle, dataset, args) | {"train_s": round(seconds, 1), "total_s": round(time.perf_counter() - started, 1)}
        results[method] = r
        rows.append({"method": method, "good": r["n_good"], "still": f"{100 * r['false_alarms']:.1f} %",
                     "moved": f"{100 * r['false_alarms_moved']:.1f} %", "ratio": f"{r['ratio']:.2f}", "train_s": r["train_s"]})
        print(f"[{method}] {rows[-1]}", flush=True)
    columns = [("method", "method"), ("good", "good images"), ("still", "false alarms"),
               ("moved", f"moved ±{args.shift:g} px ±{args.angle:g}°"), ("ratio", "ratio"), ("train_s", "train s")]
    print(format_table(rows, columns))
    path = write_results(args.out or default_out("shift"), {"benchmark": "shift", "command": command, "machine": machine,
                                                             "threads": threads, "shift_px": args.shift, "angle_deg": args.angle, "align": args.align,
                                                             "view": args.view, "margin_px": args.margin,
                                                             "results": results})
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
