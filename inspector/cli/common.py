"""What every command shares: exit codes, the one-line error style, argument types and output helpers."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from typing import Any

EXIT_ERROR = 2
EXIT_UNREADABLE = 3
EXIT_NOT_STORED = 4  # live: some results could not be stored (disk full, database locked, ...)
EXIT_NOT_JUDGED = 5  # live: some frames could not be scored (recorded as NG with the reason)
MAX_EPOCHS = 10_000
MAX_BATCH = 4096
MAX_SEED = 2**32 - 1


class CliError(Exception):
    """An error whose message is all the user needs."""


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error style: one line on stderr, exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_ERROR)


def number_in(kind: type, low: float | None, high: float | None, low_open: bool = False, power_of_two: bool = False):
    """An argparse type: a number of ``kind`` in [low, high] (``low_open``: (low, high]), refused at
    parse time with the allowed range in the message."""
    def shown(v):
        return f"{v:g}" if isinstance(v, float) else str(v)

    if high is None:
        span = f"{'more than' if low_open else 'at least'} {shown(low)}"
    else:
        span = f"more than {shown(low)} and at most {shown(high)}" if low_open else f"{shown(low)}..{shown(high)}"
    what = "a power of two" if power_of_two else "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} {span}, got '{text}'") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {what} {span}, got '{text}'")
        below = value <= low if low_open else value < low
        if below or (high is not None and value > high) or (power_of_two and value & (value - 1)):
            raise argparse.ArgumentTypeError(f"must be {what} {span}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--runtime``: where and on what a model is scored (every scoring command)."""
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, mps")
    parser.add_argument("--runtime", choices=("auto", "torch", "onnxruntime", "openvino"), default="auto",
                        help="what runs the network: torch for a model file; for an export (inspector export) "
                             "onnxruntime or openvino, auto: the fastest installed here, measured once and remembered")


WORKSTATION_INSTALL = "pip install 'inspector[app]'"
# what only the workstation install has (pyproject.toml's `app` extra): a line PC's runtime-only install scores exports without them
WORKSTATION_MODULES = ("torch", "PySide6", "pyqtgraph", "superqt", "onnx")


def needs_workstation(what: str, module: str) -> str:
    """The one line for a runtime-only install asked to do what only the workstation install does."""
    return f"{what} needs {module}: {WORKSTATION_INSTALL}"


def require_workstation(what: str, *modules: str) -> None:
    """Refuse ``what`` before any work when one of ``modules`` (default: torch) is not installed."""
    for module in modules or ("torch",):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise CliError(needs_workstation(what, module))


def open_registry():
    """The model registry, imported late: ``inspector --help`` must not pay for the engine."""
    from inspector.engine.registry import ModelRegistry

    return ModelRegistry()


# --- output -------------------------------------------------------------------------------------
class ProgressBar:
    """A one-line progress bar on stderr; plain periodic lines when stderr is not a terminal."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def update(self, done: int, total: int, extra: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self.tty else 5.0) and done < total:
            return
        self._last = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 24)
        line = f"{self.label} [{bar:<24}] {done}/{total} {extra}"
        if self.tty:
            sys.stderr.write("\r" + line[:120].ljust(120))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def answer(as_json: bool, data: Any, text: str) -> int:
    """A command's result: ``data`` as JSON with ``--json``, else ``text``."""
    if as_json:
        print_json(data)
    else:
        print(text)
    return 0


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def json_number(value: float) -> float | None:
    """A float for JSON output; nan and inf (not valid JSON) become null."""
    return value if math.isfinite(value) else None
