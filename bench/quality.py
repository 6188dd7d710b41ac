"""Quality benchmark: train each method on the ELPV good cells, evaluate on the held-out test split.

Per method it reports image AUROC, average precision, best F1, the false-alarm rate on good
cells at 90 % detection, F1 and the confusion matrix at the threshold stored in the model
(chosen by the trainer from held-out good training images only), pixel AUROC of synthetic
defects painted on the test-good cells, training time and training images/s.

Everything goes through the public engine API: ``Trainer`` trains and calibrates,
``Predictor`` scores (the same code path as the app), ``metrics`` computes the figures.

    INSPECTOR_THREADS=2 python bench/quality.py --methods ganomaly --image-size 64 --epochs 15
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
    finish,
    format_table,
    machine_info,
    method_params,
    select_methods,
    write_results,
)


def add_training_arguments(parser: argparse.ArgumentParser, image_size: int = 64) -> None:
    """The training settings ``train`` reads, for every benchmark that trains through it."""
    parser.add_argument("--image-size", type=int, default=image_size, help=f"model input size in pixels (default {image_size})")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the trainer's default)")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch size (default: the trainer's default)")
    parser.add_argument("--threshold-mode", default=None, help="good-quantile | synthetic-f1 (default: the trainer's default)")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bfloat16 autocast on a CPU that has bfloat16 instructions (default: the trainer's default)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--data", type=Path, default=OUT_DIR / "elpv", help="ELPV copy in MVTec layout, made if missing (default bench/out/elpv)")
    add_training_arguments(parser)
    parser.add_argument("--save-models", type=Path, default=None, help="folder to save each trained model file in")
    parser.add_argument("--model", type=Path, action="append", default=[], help="evaluate this model file instead of training (repeatable)")
    parser.add_argument(
        "--rescore",
        action="append",
        default=[],
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="also evaluate each trained model with these scoring options (e.g. score_mode=latent): the same "
        "weights, re-calibrated by the Trainer on the same held-out good images (0 epochs, init_from); repeatable",
    )
    return parser.parse_args(argv)


def open_data(path: Path):
    from inspector.data import elpv_available, materialise_elpv, open_dataset

    marker = path / ".elpv-complete"
    if marker.is_file() or (path / "train" / "good").is_dir():
        return open_dataset(path)
    if not elpv_available():
        raise SystemExit(f"no dataset at {path} and the elpv-dataset package is not installed (pip install elpv-dataset)")
    print(f"materialising ELPV into {path} ...", flush=True)
    return materialise_elpv(path)


def train(method: str, args, dataset):
    """Train and calibrate with the Trainer; returns the bundle, seconds and training images/s."""
    from inspector.engine.events import TrainProgress
    from inspector.engine.trainer import TrainConfig, Trainer

    options = dict(method=method, image_size=args.image_size, seed=args.seed, device=args.device, params=method_params(method, args.param))
    for key in ("epochs", "batch_size", "threshold_mode", "align", "channels", "bf16"):  # align: bench/shift.py's; channels: generality's
        if getattr(args, key, None) is not None:
            options[key] = getattr(args, key)
    config = TrainConfig(**options)
    rates: list[float] = []
    last_epoch = [0]

    def on_event(event) -> None:
        if isinstance(event, TrainProgress) and event.phase == "train":
            rates.append(event.images_per_s)
            if event.epoch != last_epoch[0] and event.step % max(event.steps // event.epochs, 1) == 0:
                last_epoch[0] = event.epoch
                losses = " ".join(f"{k}={v:.4f}" for k, v in event.losses.items())
                print(f"  [{method}] epoch {event.epoch}/{event.epochs}  {event.images_per_s:.1f} img/s  {losses}", flush=True)

    started = time.perf_counter()
    bundle = Trainer(config, on_event=on_event).fit(
        [s.path for s in dataset.train], data_info={"dataset": str(dataset.root), "fingerprint": dataset.fingerprint()}
    )
    seconds = time.perf_counter() - started
    # the trainer's rate is cumulative over the run, so its last value is the whole run's average
    return bundle, seconds, (rates[-1] if rates else float("nan"))


def evaluate(bundle, dataset, seed: int, device: str) -> dict:
    import numpy as np

    from inspector.data import make_defect_set, read_image
    from inspector.data.datasets import DEFECT, GOOD
    from inspector.engine import metrics
    from inspector.engine.predictor import Predictor

    predictor = Predictor(bundle, device)
    samples = [s for s in dataset.test if s.label in (GOOD, DEFECT)]
    labels = np.array([s.label for s in samples])
    scores = np.full(len(samples), np.nan)
    index = {s.path: i for i, s in enumerate(samples)}
    started = time.perf_counter()
    for path, result in predictor.predict_paths([s.path for s in samples], batch_size=32):
        if isinstance(result, Exception):
            print(f"  skipped {path}: {result}", flush=True)
            continue
        scores[index[path]] = result.score
    score_seconds = time.perf_counter() - started
    ok = ~np.isnan(scores)
    detection = metrics.detection_metrics(labels[ok], scores[ok], predictor.threshold)

    # localisation: synthetic defects on the test-good cells, maps at the images' own resolution
    good = [read_image(s.path) for s in samples if s.label == GOOD]
    defects = make_defect_set(good, n=len(good), seed=seed)
    maps, defect_scores = [], []
    for i in range(0, len(defects), 32):
        for prediction in predictor.predict_batch([image for image, _ in defects[i : i + 32]]):
            maps.append(prediction.anomaly_map)
            defect_scores.append(prediction.score)
    masks = [mask for _, mask in defects]
    good_scores = scores[ok & (labels == GOOD)]
    halves = _halves(samples, labels)
    synthetic_labels = np.r_[np.zeros(len(good_scores)), np.ones(len(defect_scores))]
    return {
        **detection.to_dict(),
        "pixel_auroc_synthetic": metrics.pixel_auroc(masks, maps),
        "image_auroc_synthetic": metrics.auroc(synthetic_labels, np.r_[good_scores, defect_scores]),
        **{f"image_auroc_half_{h}": metrics.auroc(labels[m & ok] == DEFECT, scores[m & ok]) for h, m in halves.items()},
        "score_images_per_s": float(ok.sum() / score_seconds),
        "scores": {"good": good_scores.tolist(), "defect": scores[ok & (labels == DEFECT)].tolist()},
    }


def _halves(samples, labels) -> dict:
    """Two fixed halves of the test split (alternate cells by file name, within good and within
    defective): choices may be made on half a, half b stays untouched for the report."""
    import numpy as np

    names = np.array([s.path.name for s in samples])
    masks = {"a": np.zeros(len(samples), bool), "b": np.zeros(len(samples), bool)}
    for label in set(labels):
        members = np.flatnonzero(labels == label)
        members = members[np.argsort(names[members], kind="stable")]
        masks["a"][members[0::2]] = True
        masks["b"][members[1::2]] = True
    return masks


def rescore(bundle, assignments: str, args, dataset):
    """The same weights with other scoring options, calibrated again by the Trainer (0 epochs)."""
    from inspector.engine.trainer import TrainConfig, Trainer

    info = bundle.info
    options = method_params(info.method, [a for a in assignments.split(",") if a.strip()])
    if not options:
        return None
    trained = info.training.get("config", {})
    config = TrainConfig(
        method=info.method, image_size=info.image_size, channels=info.channels, epochs=0, seed=trained.get("seed", args.seed),
        device=args.device, holdout_fraction=trained.get("holdout_fraction", TrainConfig.holdout_fraction),
        threshold_mode=trained.get("threshold_mode", TrainConfig.threshold_mode),
        false_alarm_rate=trained.get("false_alarm_rate", TrainConfig.false_alarm_rate),
        params={**info.config, **options},
    )
    new = Trainer(config).fit([s.path for s in dataset.train], init_from=bundle)
    new.info.training = {**info.training, "rescored": options}
    return new, options


def run_one(method, model_path, args, dataset) -> list[tuple[str, dict]]:
    """Train (or load) one model and evaluate it, plus its --rescore variants; returns [(key, results)]."""
    if model_path is not None:
        from inspector.engine.bundle import ModelBundle

        bundle = ModelBundle.load(model_path)
        method = bundle.info.method
        key = f"{method}:{model_path.name}"
        seconds = bundle.info.training.get("duration_s", float("nan"))
        rate = float("nan")
        print(f"[{key}] evaluating {model_path}", flush=True)
    else:
        key = method
        print(f"[{method}] training ({args.image_size} px) ...", flush=True)
        bundle, seconds, rate = train(method, args, dataset)
        if args.save_models:
            args.save_models.mkdir(parents=True, exist_ok=True)
            bundle.save(args.save_models / f"{method}-{args.image_size}px-s{args.seed}.inspector")
    variants = [(key, bundle)]
    for assignments in args.rescore:
        made = rescore(bundle, assignments, args, dataset)
        if made is not None:
            variants.append((f"{key}[{','.join(f'{k}={v}' for k, v in made[1].items())}]", made[0]))
    out = []
    for name, b in variants:
        out.append((name, report(name, b, dataset, args, seconds, rate)))
    return out


def report(key: str, bundle, dataset, args, seconds: float, rate: float) -> dict:
    result = evaluate(bundle, dataset, args.seed, args.device)
    result.update(
        method=bundle.info.method,
        image_size=bundle.info.image_size,
        config=bundle.info.config,
        threshold_info=bundle.info.threshold.to_dict(),
        calibration=bundle.info.metrics.get("calibration", {}),
        train_seconds=seconds,
        train_images_per_s=rate,
        epochs=bundle.info.training.get("config", {}).get("epochs"),
    )
    c = result["confusion"]
    print(
        f"[{key}] AUROC {result['image_auroc']:.3f}  AP {result['average_precision']:.3f}  best F1 {result['best_f1']:.3f}  "
        f"at stored threshold {result['threshold']:.4g}: F1 {result['f1']:.3f}  "
        f"(good→OK {c['tn']}, good→NG {c['fp']}, defect→OK {c['fn']}, defect→NG {c['tp']})",
        flush=True,
    )
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    command = command_line()  # before --threads sets the variable, so it is not printed twice
    threads = apply_threads(args.threads)
    methods = select_methods(args.methods) if not args.model else []
    dataset = open_data(args.data)
    machine = machine_info(args.device)
    print(f"command: {command}")
    print(describe_machine(machine))
    counts = dataset.counts()
    print(f"data: {dataset.root} ({counts['train_good']} train good, {counts['test_good']} test good, {counts['test_defect']} test defect)\n")

    jobs = [(None, path) for path in args.model] if args.model else [(m, None) for m in methods]
    results = {}
    errors = {}
    for method, model_path in jobs:
        key = method or str(model_path)
        try:
            for name, result in run_one(method, model_path, args, dataset):
                results[name] = result
        except Exception as e:  # noqa: BLE001 — one broken method must not cost the others' results
            print(f"[{key}] FAILED: {type(e).__name__}: {e}", flush=True)
            errors[key] = f"{type(e).__name__}: {e}"
            continue

    rows = []
    for key, r in results.items():
        c = r["confusion"]
        rows.append(
            {
                "method": key, "px": r["image_size"], "epochs": r["epochs"], "auroc": r["image_auroc"],
                "halves": f"{r['image_auroc_half_a']:.3f} / {r['image_auroc_half_b']:.3f}", "ap": r["average_precision"],
                "bf1": r["best_f1"], "far90": r["false_alarm_at_90_recall"], "f1": r["f1"], "far": r["false_alarm_rate"],
                "cm": f"{c['tn']}/{c['fp']}/{c['fn']}/{c['tp']}", "pix": r["pixel_auroc_synthetic"],
                "train_s": r["train_seconds"], "rate": r["train_images_per_s"],
            }
        )
    print()
    print(
        format_table(
            rows,
            [
                ("method", "method"), ("px", "px"), ("epochs", "epochs"), ("auroc", "AUROC"), ("halves", "AUROC a / b"), ("ap", "AP"), ("bf1", "best F1"),
                ("far90", "FAR@90%det"), ("f1", "F1@thr"), ("far", "FAR@thr"), ("cm", "TN/FP/FN/TP@thr"),
                ("pix", "pixAUROC(syn)"), ("train_s", "train s"), ("rate", "train img/s"),
            ],
        )
    )
    print("\nconfusion matrices at the stored threshold (rows: truth, columns: decision)")
    for key, r in results.items():
        c = r["confusion"]
        width = max(len(str(v)) for v in c.values())
        print(f"  {key} (threshold {r['threshold']:.4g}, {r['threshold_info']['method']})")
        print(f"    {'':8} {'OK':>{width}} {'NG':>{width}}")
        print(f"    {'good':8} {c['tn']:>{width}} {c['fp']:>{width}}")
        print(f"    {'defect':8} {c['fn']:>{width}} {c['tp']:>{width}}")

    out = write_results(
        args.out or default_out("quality"),
        {"benchmark": "quality", "command": command, "machine": machine, "threads": threads,
         "data": {"root": str(dataset.root), **counts}, "results": results, "errors": errors},
    )
    return finish(errors, out, command)


if __name__ == "__main__":
    raise SystemExit(main())
