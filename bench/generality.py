"""Generality benchmark: every method on every image set of bench/datasets.py, not only ELPV.

For each method (``--methods``), each set (``--sets``, default every set whose package is
installed) and each training seed (``--seeds``) it trains on the set's train/good with the
``Trainer`` (exactly as bench/quality.py does: same options, the threshold chosen from held-out
good training images only), scores the set's test split with the ``Predictor`` and reports,
with ``metrics``: image AUROC (good vs every defect kind, and per kind in the JSON), pixel AUROC
where the set has masks (good test images count as all-negative pixels), the false-alarm rate on
good parts at 90 % detection, training time, inference ms per image (the Predictor on the test
files, reading included) and the model file's size. The split is fixed (``--data-seed``), only the
training seed varies. The test split is scored once and never used for a choice; the sets'
validation splits (bench/datasets.py) are there for a script that needs one.

Which figures rest on synthetic defects is said in every row: ELPV's defects are real, the
texture sets' are painted by inspector.data.synthetic.

    INSPECTOR_THREADS=2 python bench/generality.py --methods ganomaly,seg-skip-ganomaly --image-size 64 --epochs 3 --seeds 0,1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
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
    markdown_table,
    select_methods,
    write_results,
)
from datasets import SETS, available_sets, describe, materialise
from quality import add_training_arguments, train


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--seeds", default=None, help="comma-separated training seeds, e.g. 0,1 (default: --seed)")
    parser.add_argument("--sets", default=None, help=f"comma-separated sets (default: every available one of {', '.join(SETS)})")
    parser.add_argument("--data-root", type=Path, default=OUT_DIR, help="where the sets are made (default bench/out)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the sets' splits and synthetic defects (default 0)")
    add_training_arguments(parser)
    parser.add_argument("--channels", type=int, choices=(1, 3), default=None, help="1 = gray, 3 = RGB (default: the method's)")
    parser.add_argument("--save-models", type=Path, default=None, help="folder to keep each trained model file in")
    return parser.parse_args(argv)


def select_sets(text: str | None) -> list[str]:
    if not text:
        names = available_sets()
        for name in SETS:
            if name not in names:
                print(f"skipping set {name}: needs the {SETS[name].package} package (pip install -e '.[bench]')", flush=True)
        return names
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETS]
    if unknown:
        raise SystemExit(f"unknown set(s): {', '.join(unknown)}; sets: {', '.join(SETS)}")
    missing = [n for n in names if not SETS[n].available()]
    if missing:
        raise SystemExit(f"set(s) {', '.join(missing)} need the package(s) {', '.join(sorted({SETS[n].package for n in missing}))}")
    return names


def evaluate(bundle, dataset, device: str, with_masks: bool) -> dict:
    """Scores of the test split through the Predictor, and the figures from ``metrics``."""
    import numpy as np

    from inspector.data import read_image
    from inspector.data.datasets import DEFECT, GOOD
    from inspector.engine import metrics
    from inspector.engine.predictor import Predictor

    predictor = Predictor(bundle, device)
    samples = [s for s in dataset.test if s.label in (GOOD, DEFECT)]
    labels = np.array([s.label for s in samples])
    scores = np.full(len(samples), np.nan)
    index = {s.path: i for i, s in enumerate(samples)}
    masks, maps = [], []
    started = time.perf_counter()
    for path, result in predictor.predict_paths([s.path for s in samples], batch_size=32):
        if isinstance(result, Exception):
            print(f"  skipped {path}: {result}", flush=True)
            continue
        i = index[path]
        scores[i] = result.score
        if with_masks:
            sample = samples[i]
            if sample.mask_path is not None:
                masks.append(read_image(sample.mask_path, channels=1))
                maps.append(result.anomaly_map)
            elif sample.label == GOOD:
                masks.append(np.zeros(result.anomaly_map.shape, np.uint8))
                maps.append(result.anomaly_map)
    seconds = time.perf_counter() - started
    ok = ~np.isnan(scores)
    detection = metrics.detection_metrics(labels[ok], scores[ok], predictor.threshold)
    kinds = sorted({s.defect_type for s in samples if s.label == DEFECT})
    types = np.array([s.defect_type for s in samples])
    per_kind = {}
    for kind in kinds:
        chosen = ok & ((labels == GOOD) | (types == kind))
        per_kind[kind] = metrics.auroc(labels[chosen] == DEFECT, scores[chosen])
    return {
        **detection.to_dict(),
        "image_auroc_per_kind": per_kind,
        "pixel_auroc": metrics.pixel_auroc(masks, maps) if with_masks and masks else None,
        "inference_ms_per_image": 1000.0 * seconds / max(int(ok.sum()), 1),
        "scored": int(ok.sum()),
        "scores": {"good": scores[ok & (labels == GOOD)].tolist(), "defect": scores[ok & (labels == DEFECT)].tolist()},
    }


def model_file_bytes(bundle, keep: Path | None, name: str) -> int:
    """Size of the model file as the registry would store it (saved with ``ModelBundle.save``)."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return bundle.save(keep / f"{name}.inspector").stat().st_size
    with tempfile.TemporaryDirectory() as folder:
        return bundle.save(Path(folder) / "model.inspector").stat().st_size


def run_one(method: str, set_name: str, seed: int, args, dataset, info: dict) -> dict:
    run_args = argparse.Namespace(**{**vars(args), "seed": seed})
    print(f"[{method} / {set_name} / seed {seed}] training ({args.image_size} px, {len(dataset.train)} good images) ...", flush=True)
    bundle, seconds, rate = train(method, run_args, dataset)
    result = evaluate(bundle, dataset, args.device, info["masks"])
    result.update(
        method=method, set=set_name, seed=seed, image_size=bundle.info.image_size, epochs=bundle.info.training.get("config", {}).get("epochs"),
        config=bundle.info.config, threshold_info=bundle.info.threshold.to_dict(), train_seconds=seconds, train_images_per_s=rate,
        model_bytes=model_file_bytes(bundle, args.save_models, f"{method}-{set_name}-{args.image_size}px-s{seed}"),
        defects=info["defects"],
    )
    pix = result["pixel_auroc"]
    print(
        f"[{method} / {set_name} / seed {seed}] image AUROC {result['image_auroc']:.3f}  "
        f"pixel AUROC {'-' if pix is None else f'{pix:.3f}'}  FAR@90% {result['false_alarm_at_90_recall']:.3f}  "
        f"train {seconds:.1f} s  {result['inference_ms_per_image']:.1f} ms/img  {result['model_bytes'] / 1e6:.2f} MB",
        flush=True,
    )
    return result


def _mean_spread(values: list[float | None]) -> str | None:
    """'mean ±half-range' over seeds (just the value for one seed); None when there is none."""
    values = [v for v in values if v is not None and v == v]
    if not values:
        return None
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.3f}"
    return f"{mean:.3f} ±{(max(values) - min(values)) / 2:.3f}"


def summary_rows(results: dict, sets_info: dict) -> list[dict]:
    """One row per (method, set): figures over the seeds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results.values():
        groups.setdefault((r["method"], r["set"]), []).append(r)
    rows = []
    for (method, set_name), runs in groups.items():
        info = sets_info[set_name]
        counts = info["counts"]["test"]
        n_defect = sum(v for k, v in counts.items() if k != "good")
        rows.append(
            {
                "method": method, "set": set_name,
                "defects": f"{info['defects']}" + ("" if info["masks"] else ", no masks"),
                "test": f"{counts.get('good', 0)}/{n_defect}", "seeds": len(runs),
                "auroc": _mean_spread([r["image_auroc"] for r in runs]),
                "pix": _mean_spread([r["pixel_auroc"] for r in runs]),
                "far90": _mean_spread([r["false_alarm_at_90_recall"] for r in runs]),
                "train_s": f"{statistics.fmean(r['train_seconds'] for r in runs):.1f}",
                "ms": f"{statistics.fmean(r['inference_ms_per_image'] for r in runs):.1f}",
                "mb": f"{statistics.fmean(r['model_bytes'] for r in runs) / 1e6:.2f}",
            }
        )
    return rows


def method_rows(results: dict) -> list[dict]:
    """Per method: mean image AUROC over the sets with real defects and over those with synthetic ones."""
    by_method: dict[str, dict[str, list[float]]] = {}
    for r in results.values():
        by_method.setdefault(r["method"], {"real": [], "synthetic": []})[r["defects"]].append(r["image_auroc"])
    return [
        {
            "method": m, "real": statistics.fmean(v["real"]) if v["real"] else None,
            "synthetic": statistics.fmean(v["synthetic"]) if v["synthetic"] else None,
            "runs": len(v["real"]) + len(v["synthetic"]),
        }
        for m, v in by_method.items()
    ]


COLUMNS = [
    ("method", "method"), ("set", "set"), ("defects", "defects"), ("test", "test good/defect"), ("seeds", "seeds"),
    ("auroc", "image AUROC"), ("pix", "pixel AUROC"), ("far90", "FAR@90%det"), ("train_s", "train s"),
    ("ms", "ms/img"), ("mb", "model MB"),
]


def main(argv=None) -> int:
    args = parse_args(argv)
    command = command_line()  # before --threads sets the variable, so it is not printed twice
    threads = apply_threads(args.threads)
    methods = select_methods(args.methods)
    set_names = select_sets(args.sets)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds else [args.seed]
    machine = machine_info(args.device)
    print(f"command: {command}")
    print(describe_machine(machine))

    from inspector.data import open_dataset

    datasets, sets_info = {}, {}
    for name in set_names:
        path = materialise(name, args.data_root, args.data_seed)
        datasets[name] = open_dataset(path)
        sets_info[name] = describe(path)
        c = datasets[name].counts()
        print(f"set {name}: {path} ({c['train_good']} train good, {c['test_good']} test good, {c['test_defect']} test defect; "
              f"{sets_info[name]['defects']} defects)")
    print(flush=True)

    out_path = args.out or default_out("generality")
    results, errors = {}, {}

    def save(complete: bool) -> Path:
        # written after every run too, so a run stopped half-way keeps what it measured
        return write_results(
            out_path,
            {"benchmark": "generality", "command": command, "machine": machine, "threads": threads, "seeds": seeds,
             "data_seed": args.data_seed, "sets": sets_info, "results": results, "summary": summary_rows(results, sets_info),
             "errors": errors, "complete": complete},
        )

    for method in methods:
        for name in set_names:
            for seed in seeds:
                key = f"{method}/{name}/s{seed}"
                try:
                    results[key] = run_one(method, name, seed, args, datasets[name], sets_info[name])
                except Exception as e:  # noqa: BLE001 — one broken run must not cost the others' results
                    print(f"[{key}] FAILED: {type(e).__name__}: {e}", flush=True)
                    errors[key] = f"{type(e).__name__}: {e}"
                save(complete=False)

    rows = summary_rows(results, sets_info)
    print()
    print(format_table(rows, COLUMNS))
    out = save(complete=True)
    print("\nMarkdown (figures over the seeds: mean ±half the spread; 'synthetic' rows rest on painted defects):\n")
    print(markdown_table(rows, COLUMNS, left=3))
    print()
    print(markdown_table(method_rows(results), [("method", "method"), ("real", "mean image AUROC, real defects"),
                                                ("synthetic", "mean image AUROC, synthetic defects"), ("runs", "runs")]))
    return finish(errors, out, command)


if __name__ == "__main__":
    raise SystemExit(main())
