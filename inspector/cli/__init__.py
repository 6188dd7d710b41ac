"""Every capability, headless: ``inspector data|train|advise|eval|predict|models|export|live|history|methods|demo``; and ``gui``, the desktop app.

Errors are one clear line on stderr and a non-zero exit code (set INSPECTOR_DEBUG=1 for the
traceback). ``--json`` prints machine-readable output only, on stdout.

One module per command group registers its own sub-parser: ``train``, ``advise``, ``evaluate``, ``predict``,
``models``, ``export``, ``live``, ``history`` and ``app`` (data, methods, demo, gui); ``common`` holds what
they share (exit codes, the error style, argument types, output helpers).
"""

from __future__ import annotations

import argparse
import os
import sys

from inspector.cli import advise, app, evaluate, export, history, live, models, predict, train
from inspector.cli.common import EXIT_ERROR, EXIT_NOT_JUDGED, EXIT_NOT_STORED, EXIT_UNREADABLE, WORKSTATION_MODULES, Parser, needs_workstation

__all__ = ["EXIT_ERROR", "EXIT_NOT_JUDGED", "EXIT_NOT_STORED", "EXIT_UNREADABLE", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from inspector import __version__

    p = Parser(prog="inspector", description="Visual inspection with GAN anomaly detection.")
    p.add_argument("--version", action="version", version=f"inspector {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    app.register_data(sub)
    for module in (train, advise, evaluate, predict, models, export, live, history, app):
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a refused argument (already printed)
        return e.code if isinstance(e.code, int) else EXIT_ERROR
    try:
        from inspector.data.images import max_image_pixels

        max_image_pixels()  # a bad INSPECTOR_MAX_IMAGE_PIXELS is refused now, not at the first image
        from inspector.engine.device import steady_memory

        steady_memory()  # every command and the app may score: freed memory kept for the next image
        if not getattr(args, "window", False):  # the app limits threads in its background start-up (torch loads there)
            from inspector.engine.device import limit_threads

            limit_threads()  # before any torch work: oversubscribed threads are ruinous on small machines
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one clear line instead of a traceback
        if os.environ.get("INSPECTOR_DEBUG"):
            raise
        message = str(e) or type(e).__name__
        if isinstance(e, KeyError) and e.args:
            message = str(e.args[0])
        missing = (getattr(e, "name", None) or "").split(".")[0]
        if isinstance(e, ModuleNotFoundError) and missing in WORKSTATION_MODULES:  # e.g. a trained model on a runtime-only install
            message = needs_workstation(f"inspector {args.command}", missing)
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
