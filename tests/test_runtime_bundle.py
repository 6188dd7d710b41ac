"""Build the runtime bundle (a line PC's: no torch, no Qt) with ``packaging/build.sh --runtime`` and
run its self-test: it scores the export it carries as torch did (minutes: skipped without PyInstaller,
as tests/test_bundle.py; the build installs its own PyInstaller into the runtime-only environment)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inspector import __version__

ROOT = Path(__file__).resolve().parents[1]
MAX_ARCHIVE_BYTES = 150_000_000  # a line PC's download: the full bundle's torch alone is 434 MB unpacked

pytestmark = [
    pytest.mark.bundle,
    pytest.mark.skipif(importlib.util.find_spec("PyInstaller") is None, reason="PyInstaller is not installed"),
    pytest.mark.timeout(1200),
]


def test_runtime_bundle_is_small_has_no_torch_or_qt_and_passes_its_self_test(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    build = subprocess.run(["bash", "packaging/build.sh", "--runtime"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    bundle = ROOT / "dist" / "inspector-runtime"
    [archive] = (ROOT / "dist").glob(f"inspector-runtime-{__version__}-*.tar.gz")
    assert archive.stat().st_size <= MAX_ARCHIVE_BYTES, f"{archive.name}: {archive.stat().st_size / 1e6:.0f} MB"
    carried = {p.name.split("-")[0].split(".")[0] for p in (bundle / "_internal").iterdir()}
    assert not carried & {"torch", "PySide6", "shiboken6", "pyqtgraph", "superqt", "onnx", "openvino"}, sorted(carried)

    exe = bundle / ("inspector.exe" if sys.platform == "win32" else "inspector")
    run_env = {**os.environ, "INSPECTOR_HOME": str(tmp_path / "home")}
    version = subprocess.run([str(exe), "--version"], env=run_env, capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == f"inspector {__version__}"
    test = subprocess.run([str(exe), "--self-test"], env=run_env, capture_output=True, text=True, timeout=300)
    assert test.returncode == 0 and test.stdout.strip().splitlines()[-1].startswith("OK"), test.stdout + test.stderr
    assert "torch: none" in test.stdout, test.stdout
    train = subprocess.run([str(exe), "train", str(tmp_path)], env=run_env, capture_output=True, text=True, timeout=120)
    assert (train.returncode, train.stderr) == (2, "error: training needs torch: pip install 'inspector[app]'\n")
