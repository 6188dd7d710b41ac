"""The CLI as a script on a line PC would use it: exit codes, one-line errors, JSON output."""

import csv
import json
import shutil

import pytest

from inspector import __version__
from inspector.cli import EXIT_ERROR, EXIT_UNREADABLE, main

TRAIN = ["--method", "ganomaly", "--image-size", "32", "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--param", "width=8", "--param", "nz=16"]


@pytest.fixture
def trained(tmp_home, parts_dir, capsys):
    assert main(["train", str(parts_dir), "--name", "parts", *TRAIN]) == 0
    capsys.readouterr()
    return "parts"


def test_train_registers_a_model_with_threshold(trained, capsys):
    assert main(["models", "list", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert [(m["name"], m["version"], m["method"]) for m in models] == [("parts", 1, "ganomaly")]
    assert models[0]["threshold"] > 0 and models[0]["dataset"] == "parts0"


def test_predict_reports_the_corrupt_file_and_scores_the_rest(trained, parts_dir, tmp_path, capsys):
    folder = tmp_path / "inbox"
    shutil.copytree(parts_dir, folder)
    (folder / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out_csv = tmp_path / "scores.csv"
    assert main(["predict", trained, str(folder), "--csv", str(out_csv), "--out", str(tmp_path / "ov")]) == 0
    captured = capsys.readouterr()
    assert "zz_corrupt.png" in captured.err and "40 scored" in captured.err and "1 unreadable" in captured.err
    rows = list(csv.DictReader(open(out_csv)))
    assert len(rows) == 41 and sum(1 for r in rows if r["error"]) == 1
    assert len(list((tmp_path / "ov").glob("*_overlay.png"))) == 40
    assert main(["predict", trained, str(folder), "--strict", "--json"]) == EXIT_UNREADABLE
    data = json.loads(capsys.readouterr().out)
    assert len(data["results"]) == 40 and data["unreadable"][0]["path"].endswith("zz_corrupt.png")


def test_eval_writes_report_and_json(trained, tmp_path, capsys):
    data = tmp_path / "mvtec"
    from inspector.data.images import read_image, write_image
    from inspector.data.synthetic import paint_defect
    import numpy as np
    from tests.conftest import make_part

    rng = np.random.default_rng(7)
    for i in range(6):
        write_image(data / "train" / "good" / f"{i}.png", make_part(rng))
        write_image(data / "test" / "good" / f"{i}.png", make_part(rng))
        image, mask = paint_defect(make_part(rng), rng, kind="blob")
        write_image(data / "test" / "blob" / f"{i}.png", image)
        write_image(data / "ground_truth" / "blob" / f"{i}_mask.png", mask)
    report = tmp_path / "report"
    assert main(["eval", trained, str(data), "--out", str(report), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    m = result["metrics"]
    assert m["n_good"] == 6 and m["n_defect"] == 6 and 0 <= m["image_auroc"] <= 1
    assert sum(m["confusion"].values()) == 12 and result["pixel_auroc"] is not None
    for name in ("metrics.json", "scores.csv", "roc.png", "histogram.png", "confusion.png"):
        assert (report / name).is_file(), name
    assert read_image(report / "roc.png").std() > 0 and list((report / "overlays").glob("*.png"))


def test_models_show_delete_and_versions(trained, parts_dir, capsys):
    assert main(["train", str(parts_dir), "--name", "parts", "--init-from", "parts", *TRAIN]) == 0
    capsys.readouterr()
    assert main(["models", "show", "parts", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 2 and shown["parent"] == "parts@v1" and len(shown["versions"]) == 2
    assert shown["format_version"] == 1 and shown["app_version"] == __version__  # the file's format, apart from the app's
    assert main(["models", "activate", "parts@v1"]) == 0  # roll back
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["version"] == 1
    assert main(["models", "activate", "parts@v9"]) == EXIT_ERROR
    assert main(["models", "activate", "parts@v2"]) == 0
    assert main(["models", "delete", "parts@v1"]) == 0
    assert main(["models", "delete", "parts"]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"models": [], "broken": []}


@pytest.mark.parametrize(
    "argv,message",
    [
        (["predict", "nosuch", "x.png"], "no model named 'nosuch'"),
        (["train", "/does/not/exist"], "does/not/exist"),
        (["train", ".", "--method", "nosuch"], "unknown method 'nosuch'"),
        (["models", "show", "/tmp/not-a-model.inspector"], "not found"),
    ],
)
def test_errors_are_one_clear_line(tmp_home, capsys, argv, message):
    assert main(argv) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err and "Traceback" not in err


def test_every_command_has_help(capsys):
    for argv in (["--help"], ["train", "--help"], ["eval", "--help"], ["predict", "--help"], ["models", "--help"], ["data", "elpv", "--help"]):
        assert main(argv) == 0
    assert "usage" in capsys.readouterr().out


def test_methods_lists_registered_methods(capsys):
    assert main(["methods", "--json"]) == 0
    methods = json.loads(capsys.readouterr().out)
    assert "ganomaly" in [m["name"] for m in methods]
    assert all(m["description"] and m["defaults"]["image_size"] for m in methods)


@pytest.mark.parametrize("method,epochs,batch_size,image_size", [("ganomaly", 15, 32, 64), ("seg-skip-ganomaly", 24, 16, 128)])
def test_train_takes_the_methods_own_defaults_unless_told(method, epochs, batch_size, image_size):
    from inspector.cli import build_parser
    from inspector.cli.train import train_config

    parser = build_parser()
    config = train_config(parser.parse_args(["train", "data", "--method", method]))
    assert (config.epochs, config.batch_size, config.image_size) == (epochs, batch_size, image_size)
    config = train_config(parser.parse_args(["train", "data", "--method", method, "--epochs", "3", "--batch-size", "8"]))
    assert (config.epochs, config.batch_size) == (3, 8)


def test_demo_headless_trains_the_demo_method_with_its_settings_and_writes_the_report(tmp_home, parts_dir, monkeypatch):
    from inspector.data import elpv
    from inspector.data.datasets import open_dataset
    from inspector.engine.demo import DEMO_METHOD, DEMO_MODEL, DEMO_PARAMS
    from inspector.engine.registry import ModelRegistry

    monkeypatch.setattr(elpv, "materialise_elpv", lambda folder, progress=None: open_dataset(parts_dir))
    assert main(["demo", "--headless", "--epochs", "1"]) == 0
    from inspector.models import DEFAULT_METHOD

    info = ModelRegistry().latest(DEMO_MODEL).info
    assert info.method == DEMO_METHOD == DEFAULT_METHOD  # the demo shows what a new user gets
    assert all(info.config[key] == value for key, value in DEMO_PARAMS.get(DEMO_METHOD, {}).items())
    assert any(tmp_home.rglob(f"reports/{DEMO_MODEL}/*"))
