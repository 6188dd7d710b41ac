"""``--runtime auto``: the fastest installed runtime for an export on this machine, measured once.

The choice is remembered per export (its metadata's hash) and machine (processor, cores,
threads) in ``<data dir>/runtime-choices.json``, so a line PC measures at its first start and
then opens the same runtime every time. A choice whose runtime is no longer installed is measured
again, and one that cannot load the export is passed over. Only speed is chosen here: every runtime an export runs on was checked for parity when it
was written (``engine/export.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from inspector.atomic import write_bytes_atomic
from inspector.engine import paths

if TYPE_CHECKING:
    from inspector.engine.backends import Backend
    from inspector.engine.exported import ExportedModel

CHOICES_FILE = "runtime-choices.json"
TIMED_CALLS = 10  # batch-1 calls timed per runtime, after 3 not timed


def fastest(model: ExportedModel, runtimes: list[str], device: Any = "auto", threads: int | None = None) -> Backend:
    from inspector.engine.backends import BackendError
    from inspector.engine.exported import open_backend

    key = _key(model, threads)
    remembered = _read().get(key)
    if remembered in runtimes:
        try:
            return open_backend(model, remembered, device, threads)
        except BackendError:  # it ran here once and no longer does: measured again without it
            runtimes = [r for r in runtimes if r != remembered]
    timed: dict[str, tuple[float, Backend]] = {}
    errors: list[BackendError] = []
    for runtime in runtimes:
        try:
            backend = open_backend(model, runtime, device, threads)
        except BackendError as e:  # an installed runtime that cannot load this export: the others can
            errors.append(e)
            continue
        timed[runtime] = (_median_ms(backend, model), backend)
    if not timed:
        raise errors[0] if errors else BackendError(f"{model.path}: no runtime here runs this export")
    best = min(timed, key=lambda r: timed[r][0])
    choices = _read()
    choices[key] = best
    try:
        write_bytes_atomic(paths.data_dir() / CHOICES_FILE, json.dumps(choices, indent=1, sort_keys=True).encode())
    except OSError:  # a read-only data folder: measured again next time, nothing lost
        pass
    return timed[best][1]


def _median_ms(backend: Backend, model: ExportedModel) -> float:
    size, channels = int(model.info.config["image_size"]), int(model.info.config["channels"])
    batch = np.zeros((1, channels, size, size), np.float32)
    times = []
    for i in range(3 + TIMED_CALLS):
        started = time.perf_counter()
        backend.score(batch, reconstruct=False)
        if i >= 3:
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _key(model: ExportedModel, threads: int | None) -> str:
    meta = (model.path / "inspector.json").read_bytes()
    digest = hashlib.sha256(meta).hexdigest()[:16]
    return f"{digest}|{platform.machine()}|{_processor()}|{os.cpu_count()}|{threads or 0}"


def _processor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _read() -> dict[str, str]:
    try:
        choices = json.loads((paths.data_dir() / CHOICES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in choices.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(choices, dict) else {}
