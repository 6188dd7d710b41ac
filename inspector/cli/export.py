"""``inspector export``: a model as ONNX or OpenVINO graphs for a line PC, its parity measured and stored."""

from __future__ import annotations

import argparse
import sys

from inspector.cli.common import CliError, open_registry, print_json, require_workstation


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="export a model for ONNX Runtime or OpenVINO (scored without torch), parity measured")
    e.add_argument("model", metavar="MODEL", help="name, name@vN or model file")
    e.add_argument("dest", metavar="DEST", help="the folder to write (it must not exist, or be an export with --force)")
    e.add_argument("--format", choices=("onnx", "openvino"), default="onnx")
    e.add_argument("--int8", action="store_true", help="quantise to int8 (static, calibrated on the good images); flips are reported")
    e.add_argument("--data", metavar="DIR", help="the model's training folder, for its held-out good images (default: the folder it records)")
    e.add_argument("--force", action="store_true", help="replace an existing export at DEST; accept an int8 export that flips verdicts")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    require_workstation("export", "torch", "onnx")
    from inspector.engine.bundle import ModelBundle
    from inspector.engine.export import ExportRefused, export
    from inspector.engine.exported import parity_lines

    bundle = ModelBundle.load(open_registry().resolve(args.model))
    try:
        result = export(bundle, args.dest, args.format, int8=args.int8, data=args.data, force=args.force)
    except ExportRefused as e:
        raise CliError(str(e)) from None
    parity = result.parity
    if args.json:
        print_json({"path": str(result.model.path), **result.model.summary()})
        return 0
    print(f"exported {bundle.info.ref} to {result.model.path} ({args.format}, {result.model.precision})")
    print("\n".join(parity_lines(parity)))
    if args.int8 and parity["flips"]:
        print(f"warning: int8 flips {parity['flips']} verdict(s); exported because of --force", file=sys.stderr)
    return 0

