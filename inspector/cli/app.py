"""The commands around the models: ``data`` (prepare datasets), ``methods``, ``demo`` and ``gui``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inspector.cli.common import ProgressBar, open_registry, print_json, require_workstation
from inspector.engine.demo import DEMO_METHOD


def register_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="prepare datasets").add_subparsers(dest="dataset", required=True, metavar="DATASET")
    elpv = data.add_parser("elpv", help="materialise the ELPV solar-cell set (elpv-dataset package) as an MVTec layout")
    elpv.add_argument("--out", required=True, help="folder to write")
    elpv.add_argument("--seed", type=int, default=0)
    elpv.add_argument("--json", action="store_true")
    elpv.set_defaults(func=cmd_data_elpv)


def register(sub: argparse._SubParsersAction) -> None:
    """``methods``, ``demo`` and ``gui`` (``data`` comes first in the help: register_data)."""
    me = sub.add_parser("methods", help="list the methods with their defaults")
    me.add_argument("--json", action="store_true")
    me.set_defaults(func=cmd_methods)

    d = sub.add_parser("demo", help="open the app on the ELPV demo project (its model is trained on first start)")
    d.add_argument("--method", default=DEMO_METHOD)
    d.add_argument("--epochs", type=int, help="training epochs (method default)")
    d.add_argument("--headless", action="store_true", help="no window: prepare the data, train if needed, write the evaluation report")
    d.add_argument("--screenshot", metavar="PNG", help=argparse.SUPPRESS)
    d.set_defaults(func=cmd_demo, window=True)  # --headless runs `train`/`eval` through main(): threads limited there

    g = sub.add_parser("gui", help="open the desktop app")
    g.add_argument("--data", metavar="DIR", help="open this dataset folder (default: the last one)")
    g.add_argument("--model", metavar="MODEL", help="load this registry name[@vN] or model file (default: the last one)")
    g.add_argument("--theme", choices=("system", "light", "dark"), help="colour theme (default: the saved choice, else the system's)")
    g.add_argument("--screenshot", metavar="PNG", help="save a picture of the window once it has loaded, then quit")
    g.set_defaults(func=cmd_gui, window=True)


def cmd_data_elpv(args: argparse.Namespace) -> int:
    from inspector.data.elpv import materialise_elpv

    bar = ProgressBar("copying ELPV", not args.json)
    ds = materialise_elpv(Path(args.out), seed=args.seed, progress=lambda d, t: bar.update(d, t))
    bar.close()
    if args.json:
        print_json({"path": str(ds.root), "counts": ds.counts()})
    else:
        print(f"ELPV written to {ds.root}: {ds.counts()}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    import dataclasses

    require_workstation("training")  # the methods are torch networks
    from inspector.models import get_method, method_names

    rows = []
    for name in method_names():
        cls = get_method(name)
        defaults = dataclasses.asdict(cls.Config())
        rows.append({"name": name, "description": cls.description, "defaults": defaults | cls.train_defaults})
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            print(f"{row['name']:22s} {row['description']}")
            print(" " * 23 + ", ".join(f"{k}={v}" for k, v in row["defaults"].items()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo project: the app opens on the ELPV solar cells (data prepared, model trained in the
    background on first start); ``--headless`` does the same without a window and writes the report."""
    require_workstation("the demo", "torch", *(() if args.headless else ("PySide6",)))
    if not args.headless:
        from inspector.gui.app import run

        return run(demo={"method": args.method, "epochs": args.epochs}, screenshot=args.screenshot)
    from inspector.cli import main
    from inspector.data.elpv import materialise_elpv
    from inspector.engine import paths
    from inspector.engine.demo import DEMO_MODEL, DEMO_PARAMS, demo_data_dir
    from inspector.engine.registry import RegistryError

    bar = ProgressBar("preparing ELPV", True)
    data = materialise_elpv(demo_data_dir(), progress=lambda d, t: bar.update(d, t)).root
    bar.close()
    print(f"demo data: {data}", file=sys.stderr)
    try:
        open_registry().latest(DEMO_MODEL)
    except RegistryError:
        print(f"training the demo model '{DEMO_MODEL}' (first start only) ...", file=sys.stderr)
        options = ["--epochs", str(args.epochs)] if args.epochs else []
        for key, value in DEMO_PARAMS.get(args.method, {}).items():
            options += ["--param", f"{key}={json.dumps(value)}"]
        rc = main(["train", str(data), "--method", args.method, "--name", DEMO_MODEL, *options])
        if rc:
            return rc
    out = paths.data_dir() / "reports" / DEMO_MODEL
    return main(["eval", DEMO_MODEL, str(data), "--out", str(out)])


def cmd_gui(args: argparse.Namespace) -> int:
    """The desktop app, optionally on a folder and a model."""
    require_workstation("the desktop app", "torch", "PySide6")
    from inspector.gui.app import run

    return run(data=args.data, model=args.model, screenshot=args.screenshot, theme=args.theme)

