"""``inspector advise``: which method for these parts, from quick trainings of a few candidates."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspector.cli.common import MAX_SEED, CliError, ProgressBar, fmt, number_in, print_json, require_workstation


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("advise", help="train quick versions of a few methods on your good images and recommend one")
    a.add_argument("data", metavar="DATA_DIR", help="a folder of good images (MVTec layout, labels.csv or flat); labelled defects are used when present")
    a.add_argument("--methods", metavar="A,B", help="compare these methods (default: the advisor's candidates that are installed)")
    a.add_argument("--seed", type=number_in(int, 0, MAX_SEED), default=0, help="seed of the held-out split, the painted defects and training")
    a.add_argument("--device", default="auto")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_advise)


def cmd_advise(args: argparse.Namespace) -> int:
    require_workstation("training")
    from inspector.data.datasets import open_dataset
    from inspector.engine.advise import AdviseError, advise, candidates_available

    try:
        candidates = candidates_available([m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None)
    except AdviseError as e:
        raise CliError(str(e)) from None
    dataset = open_dataset(Path(args.data), seed=args.seed)
    bar = ProgressBar("comparing methods", not args.json)
    try:
        result = advise(dataset, candidates, seed=args.seed, device=args.device, on_progress=lambda p: bar.update(p.done, p.total))
    except AdviseError as e:
        raise CliError(str(e)) from None
    finally:
        bar.close()
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"{result.n_train} good images trained each candidate; compared on {result.n_holdout_good} held-out good images, "
          f"{result.n_synthetic} synthetic defects painted on them and {result.n_labelled} labelled defects")
    print(f"  {'method':20s} {'px':>4s} {'epochs':>6s} {'AUROC real':>10s} {'AUROC synth':>11s} {'pixel':>6s} {'FAR@90%':>8s} {'train s':>8s} {'ms/img':>7s}")
    for r in result.results:
        if r.error:
            print(f"  {r.method:20s} could not be compared: {r.error}")
            continue
        print(f"  {r.method:20s} {r.image_size:4d} {r.epochs:6d} {fmt(r.labelled_auroc):>10s} {fmt(r.synthetic_auroc):>11s} "
              f"{fmt(r.pixel_auroc):>6s} {fmt(r.false_alarm_at_90):>8s} {r.train_s:8.1f} {r.ms_per_image:7.1f}")
    print(f"recommended: {result.reason}" if result.recommended else f"no recommendation: {result.reason}")
    print(f"note: {result.caveat}")
    return 0 if result.recommended else 1
