"""Shared helpers of the benchmark scripts: arguments, machine description, tables, results files.

Benchmarks go through the public engine API only (``Trainer``, ``Predictor``, ``metrics``);
nothing here preprocesses images or scores them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"  # git-ignored


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated method names (default: every registered method)",
    )
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (sets INSPECTOR_THREADS; default: that variable, else all cores)",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps (default auto)")
    parser.add_argument("--no-steady-memory", action="store_true",
                        help="leave glibc's malloc thresholds as they come (to measure what engine.device.steady_memory saves)")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method hyper-parameter, repeatable; 'method.key=value' applies to one method only, "
        "'key=value' to every method that has that option (others keep their defaults)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON results file (default bench/out/<name>-<time>.json)")


def select_methods(text: str | None) -> list[str]:
    """Methods named in ``--methods``, or every registered method whose package imports.

    A registered name whose package is not there yet (or fails to import) is reported and
    left out of the default list; naming it explicitly is an error.
    """
    from inspector.models import get_method, method_names

    available = method_names()
    if text:
        chosen = [m.strip() for m in text.split(",") if m.strip()]
        unknown = [m for m in chosen if m not in available]
        if unknown:
            raise SystemExit(f"unknown method(s): {', '.join(unknown)}; available: {', '.join(available)}")
    else:
        chosen = available
    usable = []
    for name in chosen:
        try:
            get_method(name)
        except Exception as e:  # noqa: BLE001 — any import failure means: cannot benchmark it
            if text:
                raise SystemExit(f"method {name} cannot be loaded: {type(e).__name__}: {e}") from None
            print(f"skipping method {name}: cannot be loaded ({type(e).__name__}: {e})", flush=True)
            continue
        usable.append(name)
    return usable


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare word such as reconstruction


def method_params(method: str, assignments: Sequence[str]) -> dict[str, Any]:
    """Method options from ``--param`` assignments, keeping only the ones this method's Config knows."""
    from inspector.models import get_method

    fields = {f.name for f in dataclasses.fields(get_method(method).Config)}
    params: dict[str, Any] = {}
    for item in assignments:
        if "=" not in item:
            raise SystemExit(f"--param expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        if "." in key:
            target, key = key.split(".", 1)
            if target != method:
                continue
            if key not in fields:
                raise SystemExit(f"method {method} has no option {key!r}; options: {', '.join(sorted(fields))}")
        elif key not in fields:
            continue
        if key in ("image_size",):
            raise SystemExit("use --image-size for the input size")
        params[key] = _parse_value(value)
    return params


def apply_threads(threads: int | None, steady_memory: bool = True) -> int:
    """Thread count for torch through the engine's own limiter (the Trainer calls it again, same value),
    and glibc's malloc set as in a scoring process (``engine.device.steady_memory``) unless
    ``--no-steady-memory`` says not to."""
    from inspector.engine import device

    if threads:
        os.environ["INSPECTOR_THREADS"] = str(threads)
    if steady_memory:
        device.steady_memory()
    return device.limit_threads()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(device: str = "auto") -> dict[str, Any]:
    import torch

    from inspector.engine.device import device_label, select_device

    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device_label(select_device(device)),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def command_line() -> str:
    """The exact command that produced the results (threads variable included when set)."""
    prefix = []
    if os.environ.get("INSPECTOR_THREADS"):
        prefix.append(f"INSPECTOR_THREADS={os.environ['INSPECTOR_THREADS']}")
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return " ".join(prefix + ["python", shlex.quote(str(script))] + [shlex.quote(a) for a in sys.argv[1:]])


def default_out(name: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return OUT_DIR / f"{name}-{stamp}.json"


def finish(errors: dict[str, str], out: Path, command: str) -> int:
    """A benchmark's last lines: what failed, where the results are, how to run it again; the exit code."""
    for key, error in errors.items():
        print(f"FAILED {key}: {error}")
    print(f"\nresults: {out}")
    print(f"command: {command}")
    return 1 if errors else 0


def write_results(path: Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _cell(value: Any) -> str:
    """A table cell: floats get 3 decimals (none past 1000), None a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # nan
            return "nan"
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def format_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """Plain-text table; ``columns`` is (key, header). Floats get 3 decimals, None a dash."""
    cell = _cell
    body = [[cell(row.get(key)) for key, _ in columns] for row in rows]
    headers = [header for _, header in columns]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in body]
    return "\n".join(lines)


def markdown_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], left: int = 1) -> str:
    """The same table as ``format_table`` in Markdown (for bench/RESULTS.md); the first ``left``
    columns are left-aligned, the others right-aligned."""
    align = [":--" if i < left else "--:" for i in range(len(columns))]
    lines = ["| " + " | ".join(header for _, header in columns) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(row.get(key)).replace("|", "\\|") for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def describe_machine(info: dict[str, Any]) -> str:
    return (
        f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} with "
        f"{info['torch_threads']} thread(s), device {info['device']}; {info['date']}"
    )
