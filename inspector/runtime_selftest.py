"""``--self-test`` of the runtime bundle (a line PC's: no torch, no Qt): prove it scores as the
workstation did, in a second.

A self-test set (``packaging/selftest_set.py``, made with torch when the bundle is built and
carried inside it) holds an export, good and defect images and torch's score and decision for
each. The bundle scores them with its own runtime and must give the same decisions and the same
scores within the export's parity bound; it also loads every line output's protocol and finds a
defect's regions (the libraries only a scoring path pulls in). Prints OK or the failure.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

SET_FOLDER = "selftest"  # where the bundle carries the set, beside its libraries


def bundled_set() -> Path | None:
    """The self-test set a frozen bundle carries (PyInstaller unpacks data under ``sys._MEIPASS``); None outside one."""
    base = getattr(sys, "_MEIPASS", None)
    return Path(base) / SET_FOLDER if base else None


def run(folder: str | Path | None = None) -> int:
    """Check ``folder`` (default: the set the bundle carries); prints the report and OK, or the failure."""

    def checks() -> list[str]:
        found = Path(folder) if folder else bundled_set()
        if found is None:
            raise RuntimeError("not a bundle: name a self-test set (packaging/selftest_set.py makes one)")
        return _checks(found)

    return report(checks)


def report(checks: Callable[[], list[str]]) -> int:
    """Run ``checks`` and print their lines and OK with the time taken, or the failure in one line;
    the exit code (both bundles' self-tests)."""
    started = time.perf_counter()
    try:
        lines = checks()
    except Exception as e:  # noqa: BLE001 — the self-test reports, it does not crash
        print(f"self-test FAILED: {type(e).__name__}: {e}")
        return 1
    for line in lines:
        print(line)
    print(f"OK ({time.perf_counter() - started:.1f} s)")
    return 0


def _checks(folder: Path) -> list[str]:
    import cv2
    import numpy as np

    from inspector import __version__
    from inspector.data.images import read_image
    from inspector.engine import paths
    from inspector.engine.predictor import Predictor
    from inspector.engine import sinks

    if not (folder / "expected.json").is_file():
        raise RuntimeError(f"no self-test set at {folder} (expected.json, export/, images/: packaging/selftest_set.py makes one)")
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    predictor = Predictor.open(folder / "export", "cpu")
    names = sorted(expected["images"])
    predictions = predictor.predict_batch([read_image(folder / "images" / name) for name in names])
    worst = 0.0
    for name, p in zip(names, predictions):
        want = expected["images"][name]
        if p.decision != want["decision"]:
            raise RuntimeError(f"{name}: {p.decision} here, {want['decision']} with torch (score {p.score:.6g}, torch {want['score']:.6g})")
        worst = max(worst, abs(p.score - want["score"]))
    if not worst <= expected["score_tolerance"]:
        raise RuntimeError(f"scores differ from torch's by up to {worst:.3g}, more than the export's bound {expected['score_tolerance']:.3g}")
    ng = [p for p in predictions if p.decision == "NG"]
    regions = len(ng[0].regions) if ng else 0  # scikit-image and SciPy load
    protocols = [m.name for m in pkgutil.iter_modules(sinks.__path__)]  # every module of the package: what a bundle must carry
    for module in protocols:
        importlib.import_module(f"{sinks.__name__}.{module}")
    folders = [paths.data_dir(), paths.cache_dir(), paths.log_dir(), paths.config_dir()]
    torch = "none (runtime-only)" if importlib.util.find_spec("torch") is None else "present"
    return [
        f"inspector {__version__} (runtime)",
        f"runtime {predictor.runtime}, OpenCV {cv2.__version__}, NumPy {np.__version__}, torch: {torch}",
        f"{len(names)} parts of {expected['model']} ({len(ng)} NG, {regions} region(s) in the first): decisions as torch's, "
        f"scores within {worst:.2g} (bound {expected['score_tolerance']:.2g})",
        f"line-output modules: {', '.join(protocols)}",
        "data folders: " + ", ".join(str(f) for f in folders),
    ]
