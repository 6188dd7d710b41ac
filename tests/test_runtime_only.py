"""A line PC's install, ``pip install ".[runtime]"`` (no torch, no Qt), judges parts as the
workstation's torch model does: ``inspector predict``, ``eval``, ``live`` into a webhook and
``history`` on an export, in an environment where ``import torch`` fails; what needs torch says so
in one line.

The environment is ``packaging/runtime-venv.sh``'s (``build/runtime-venv``, or the one
INSPECTOR_RUNTIME_VENV names): made once in about a minute, then only the project is reinstalled
from this checkout (seconds). The model, its export and the parts are ``packaging/selftest_set.py``'s,
made with this test's own environment (the workstation's, with torch), as the runtime bundle's are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inspector.engine.results_store import ResultsStore
from tests.line.servers import Receiver, in_order_once

ROOT = Path(__file__).resolve().parents[1]
NEEDS_TORCH = "needs torch: pip install 'inspector[app]'"

pytestmark = [pytest.mark.runtime, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def runtime() -> Path:
    """The runtime-only environment's bin folder, checked to have neither torch nor Qt."""
    venv = Path(os.environ.get("INSPECTOR_RUNTIME_VENV") or ROOT / "build" / "runtime-venv")
    made = subprocess.run(["bash", "packaging/runtime-venv.sh", str(venv)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    for module in ("torch", "PySide6"):
        found = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {module}"], capture_output=True, text=True)
        assert found.returncode != 0 and f"No module named '{module}'" in found.stderr, found.stderr
    return venv / "bin"


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A tiny trained model, its ONNX export and good and defect parts (packaging/selftest_set.py)."""
    dest = tmp_path_factory.mktemp("runtime") / "set"
    done = subprocess.run([sys.executable, "packaging/selftest_set.py", str(dest)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return dest


def inspector(bin_dir: Path | None, *args, home: Path) -> subprocess.CompletedProcess:
    """``inspector ARGS`` in the runtime-only environment (``bin_dir``) or, with None, in this one (torch)."""
    command = [str(bin_dir / "inspector")] if bin_dir else [sys.executable, "-m", "inspector.cli"]
    env = {**os.environ, "INSPECTOR_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.run([*command, *map(str, args)], cwd=home, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def torch_says(made, tmp_path_factory) -> dict[str, dict]:
    """``inspector predict MODEL`` with torch: each part's score and decision, by file name."""
    done = inspector(None, "predict", made / "model.inspector", made / "images", "--json", home=tmp_path_factory.mktemp("home"))
    assert done.returncode == 0, done.stderr
    results = {Path(r["path"]).name: r for r in json.loads(done.stdout)["results"]}
    assert {r["decision"] for r in results.values()} == {"OK", "NG"}
    return results


def tolerance(made: Path) -> float:
    """The export's stored parity bound on this model's scale (packaging/selftest_set.py)."""
    return json.loads((made / "expected.json").read_text())["score_tolerance"]


def test_predict_on_an_export_gives_torchs_decisions_and_scores_without_torch(runtime, made, torch_says, tmp_path):
    done = inspector(runtime, "predict", made / "export", made / "images", "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    line = {Path(r["path"]).name: r for r in json.loads(done.stdout)["results"]}
    assert line.keys() == torch_says.keys()
    assert {n: r["decision"] for n, r in line.items()} == {n: r["decision"] for n, r in torch_says.items()}
    assert max(abs(r["score"] - torch_says[n]["score"]) for n, r in line.items()) <= tolerance(made)


def test_eval_and_models_show_on_an_export_without_torch(runtime, made, tmp_path):
    shown = inspector(runtime, "models", "show", made / "export", home=tmp_path)
    assert shown.returncode == 0 and "parity" in shown.stdout, shown.stderr
    line = inspector(runtime, "eval", made / "export", made / "images", "--json", "--out", tmp_path / "report", home=tmp_path)
    workstation = inspector(None, "eval", made / "model.inspector", made / "images", "--json", home=tmp_path)
    assert line.returncode == 0 and workstation.returncode == 0, line.stderr + workstation.stderr
    assert json.loads(line.stdout)["metrics"]["confusion"] == json.loads(workstation.stdout)["metrics"]["confusion"]
    assert (tmp_path / "report" / "roc.png").is_file()


def test_live_delivers_every_verdict_to_a_webhook_as_torch_decides_and_history_lists_them(runtime, made, torch_says, tmp_path):
    receiver = Receiver()
    db = tmp_path / "results.sqlite"
    try:
        done = inspector(runtime, "live", "--model", made / "export", "--source", made / "images", "--include-existing",
                         "--max-frames", len(torch_says), "--db", db, "--sink", receiver.url, "--station-name", "line1",
                         "--stats-every", "0", "--sink-drain", "60", "--device", "cpu", home=tmp_path)
    finally:
        receiver.close()
    assert done.returncode == 0, done.stderr
    store = ResultsStore(db, readonly=True)
    stored = [f"{store.store_id}:{r.id}" for r in store.query(newest_first=False)]
    assert len(stored) == len(torch_says)
    assert in_order_once(receiver.ids()) == stored, "every stored verdict at the webhook, in order"
    verdicts = {body["frame_name"]: body for body in receiver.bodies}
    assert {n: v["decision"] for n, v in verdicts.items()} == {n: r["decision"] for n, r in torch_says.items()}
    assert max(abs(v["score"] - torch_says[n]["score"]) for n, v in verdicts.items()) <= tolerance(made)
    assert {v["station"] for v in verdicts.values()} == {"line1"}

    history = inspector(runtime, "history", "--db", db, "--json", "--limit", "0", home=tmp_path)
    assert history.returncode == 0, history.stderr
    listed = json.loads(history.stdout)
    assert listed["counts"]["total"] == len(torch_says)
    assert listed["counts"]["NG"] == sum(r["decision"] == "NG" for r in torch_says.values())


@pytest.mark.parametrize("args, what", [
    (["train", "{images}", "--name", "x"], "training"),
    (["advise", "{images}"], "training"),
    (["methods"], "training"),
    (["export", "{model}", "{tmp}/x"], "export"),
    (["demo", "--headless"], "the demo"),
    (["gui"], "the desktop app"),
    (["predict", "{model}", "{images}"], "inspector predict"),  # a trained model, not an export
])
def test_what_needs_torch_says_so_in_one_line(runtime, made, tmp_path, args, what):
    names = {"images": made / "images", "model": made / "model.inspector", "tmp": tmp_path}
    done = inspector(runtime, *(a.format(**names) for a in args), home=tmp_path)
    assert (done.returncode, done.stderr) == (2, f"error: {what} {NEEDS_TORCH}\n")


def test_help_and_version_without_torch(runtime, tmp_path):
    assert inspector(runtime, "--help", home=tmp_path).returncode == 0
    assert inspector(runtime, "--version", home=tmp_path).stdout.startswith("inspector ")
