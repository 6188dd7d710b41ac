"""``inspector eval``: a model on a dataset's test split, with an optional report folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inspector.cli.common import MAX_SEED, CliError, ProgressBar, add_model_arguments, fmt, number_in, open_registry, print_json


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="evaluate a model on a dataset's test split")
    e.add_argument("model", metavar="MODEL", help="registry name[@vN] or model file")
    e.add_argument("data", metavar="DATA_DIR")
    e.add_argument("--out", metavar="REPORT_DIR", help="write ROC, histogram, confusion matrix, overlays, scores.csv")
    e.add_argument("--overlays", type=number_in(int, 0, 10_000), default=24, help="how many overlay images the report gets")
    add_model_arguments(e)
    e.add_argument("--seed", type=number_in(int, 0, MAX_SEED), default=0, help="split seed for folders without a fixed split")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from inspector.data.datasets import open_dataset
    from inspector.engine.evaluate import evaluate
    from inspector.engine.predictor import Predictor
    from inspector.engine.report import write_report

    predictor = Predictor.open(args.model, device=args.device, registry=open_registry(), runtime=args.runtime)
    dataset = open_dataset(Path(args.data), seed=args.seed)
    if not dataset.test:
        raise CliError(f"{args.data} has no test images to evaluate")
    bar = ProgressBar("evaluating", not args.json)
    ev = evaluate(predictor, dataset, progress=lambda p: bar.update(p.done, p.total))
    bar.close()
    if args.out:
        write_report(ev, predictor, Path(args.out), overlays=args.overlays)
    result = ev.to_dict() | ({"report": str(args.out)} if args.out else {})
    if args.json:
        print_json(result)
        return 0
    for path, reason in ev.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    m = ev.metrics
    print(f"model {ev.model} on {ev.dataset}: {len(ev.rows)} images")
    if m is not None:
        for key in ("image_auroc", "average_precision", "best_f1", "false_alarm_at_90_recall", "threshold", "f1", "precision", "recall", "false_alarm_rate"):
            print(f"  {key:26s} {fmt(getattr(m, key))}")
        c = m.confusion
        print("  confusion at threshold      predicted OK  predicted NG")
        print(f"    good   ({m.n_good:5d})        {c['tn']:10d}  {c['fp']:12d}")
        print(f"    defect ({m.n_defect:5d})        {c['fn']:10d}  {c['tp']:12d}")
    if ev.pixel_auroc is not None:
        print(f"  {'pixel_auroc':26s} {fmt(ev.pixel_auroc)}")
    if args.out:
        print(f"report written to {args.out}")
    return 0
