"""The app on an exported model (pytest-qt, offscreen): opened from the Models page, it scores
the Results, Evaluate and Live pages as the torch model does (within the parity bound the
export stored); saving a threshold or rules to it is refused in one line; it cannot be
fine-tuned; a prediction without a reconstruction says so."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from inspector.data.images import list_images, read_image
from inspector.data.sources import write_video
from inspector.engine.export import export
from inspector.engine.predictor import Predictor
from inspector.engine.regions import RegionRules
from tests.conftest import main_window, make_part


@pytest.fixture(scope="module")
def exported(tiny_bundle, parts_dir, tmp_path_factory):
    """conftest's tiny GANomaly exported to ONNX, its parity measured on 12 of the parts."""
    good = [read_image(p) for p in list_images(parts_dir)[:12]]
    return export(tiny_bundle, tmp_path_factory.mktemp("export") / "tiny-onnx", "onnx", images=good).model


def open_exported(qtbot, window, folder, monkeypatch):
    """The Models page's "Open exported…" button, the folder chosen in its dialog."""
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    button = window.models_page.buttons["exported"]
    with qtbot.waitSignal(window.session.modelChanged, timeout=20000):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    return window.session.predictor


def open_data(qtbot, window, folder):
    window.data_page.open_folder(str(folder))
    qtbot.waitUntil(lambda: window.session.dataset is not None, timeout=5000)


def score_bound(exported, torch_scores) -> float:
    """The largest score difference the export's stored bound allows (relative to the model's scale)."""
    scale = max(abs(exported.info.threshold.value), float(np.max(np.abs(torch_scores))))
    return exported.parity["bound"]["score"] * scale


def test_an_exported_model_scores_the_results_and_evaluate_pages_as_the_torch_model(
        qtbot, window, exported, tiny_bundle, parts_dir, monkeypatch):
    predictor = open_exported(qtbot, window, exported.path, monkeypatch)
    session = window.session
    assert session.exported is not None and predictor.runtime in exported.runtimes()
    assert "exported" in window.model_status.text()
    details = window.models_page.details.toPlainText()
    assert "parity on 12 held-out good images" in details and "read-only" in details
    assert window.settings.last_model == str(exported.path)  # opened again next time: the folder, not its source's ref

    open_data(qtbot, window, parts_dir)
    window.show_page("results")
    job = window.results_page.score_all()
    with qtbot.waitSignal(job.finished, timeout=30000):
        pass
    paths = sorted(session.scores)
    assert len(paths) == 40
    torch_scores = np.array([p.score for _, p in Predictor(tiny_bundle, "cpu").predict_paths(paths)])
    gui_scores = np.array([session.scores[p] for p in paths])
    assert np.max(np.abs(gui_scores - torch_scores)) <= score_bound(exported, torch_scores)

    page = window.results_page  # one image shown with its reconstruction from the export's full graph
    with qtbot.waitSignal(page.predictionShown, timeout=10000) as shown:
        page.select_path(paths[0])
    assert shown.args[0].reconstruction is not None and page.view.reconstruction.view.has_image()

    evaluate = window.evaluate_page
    with qtbot.waitSignal(evaluate.evaluated, timeout=30000) as done:
        window.evaluate()
    result = done.args[0]
    assert result.synthetic and result.n_good > 0 and np.isfinite(result.scores).all()


def test_gui_model_option_opens_an_exported_folder(qtbot, tmp_home, exported):
    """``inspector gui --model EXPORT`` goes through MainWindow.start(model=...)."""
    with main_window(qtbot, model=str(exported.path)) as w:
        qtbot.waitUntil(lambda: w.session.exported is not None and w.settings.last_model == str(exported.path), timeout=20000)
        assert w.session.exported.path == exported.path and "exported" in w.windowTitle()


def test_saving_a_threshold_or_rules_to_an_exported_model_is_refused_in_one_line(qtbot, window, exported, monkeypatch):
    open_exported(qtbot, window, exported.path, monkeypatch)
    session = window.session
    session.set_threshold(session.threshold * 1.5)  # tried in memory: allowed
    assert session.threshold_modified
    assert window.save_threshold() is None
    message = window.message_bar.text.text()
    assert "read-only" in message and str(exported.path) in message and "\n" not in message
    assert window.evaluate_page.save_rules(RegionRules()) is None
    assert "read-only" in window.message_bar.text.text()
    assert session.registry().names() == [] and session.exported is not None  # nothing written, the export still loaded
    assert "read-only" in window.evaluate_page.stored.text()


def test_an_exported_model_cannot_be_fine_tuned(qtbot, window, exported, parts_dir, monkeypatch):
    open_data(qtbot, window, parts_dir)
    open_exported(qtbot, window, exported.path, monkeypatch)
    train = window.train_page
    train.select_method(exported.info.method)
    assert not train.finetune.isEnabled() and "exported model" in train.finetune.text()
    assert "no training weights" in train.finetune.toolTip()


def test_the_live_page_runs_an_exported_model(qtbot, window, exported, tmp_path, monkeypatch):
    open_exported(qtbot, window, exported.path, monkeypatch)
    page = window.live_page
    panel = page.source_panel
    qtbot.waitUntil(lambda: panel.model.findData(str(exported.path)) >= 0, timeout=10000)
    panel.model.setCurrentIndex(panel.model.findData(str(exported.path)))
    assert page.controller.model_name == ""  # no registry versions, pool or retraining for an export
    rng = np.random.default_rng(3)
    panel.source.setCurrentText(str(write_video(tmp_path / "parts.avi", [make_part(rng) for _ in range(6)], fps=60)))
    with qtbot.waitSignal(page.started, timeout=20000):
        page.start()
    qtbot.waitUntil(lambda: page.shown is not None, timeout=15000)
    assert page.controller.live.predictor.runtime in exported.runtimes()
    assert not page.feedback.retrain_button.isEnabled()
    with qtbot.waitSignal(page.stopped, timeout=10000):
        page.stop()


def test_a_prediction_without_a_reconstruction_says_so(qtbot, exported):
    from inspector.gui.widgets.prediction_view import NO_RECONSTRUCTION, PredictionView

    view = PredictionView()
    qtbot.addWidget(view)
    prediction = Predictor(exported, "cpu").predict(make_part(np.random.default_rng(5)), reconstruct=False)
    assert prediction.reconstruction is None
    view.set_prediction(prediction, prediction.threshold)
    assert not view.reconstruction.view.has_image() and view.reconstruction.view.placeholder == NO_RECONSTRUCTION
    assert view.heat.view.has_image() and view.badge.decision in ("OK", "NG")


def test_measuring_the_runtimes_in_background_jobs_leaves_the_app_alive(qtbot, window, exported, parts_dir, tmp_home):
    """``--runtime auto`` opens and times every runtime in a pooled thread and drops the slower,
    while other jobs (the thumbnails) run beside it. OpenVINO's infer requests once lived in that
    thread's locals and crashed the process in its teardown (about one load in two); several fresh
    measurements in a row would catch it again."""
    from inspector.engine import paths
    from inspector.engine.runtime_choice import CHOICES_FILE

    open_data(qtbot, window, parts_dir)
    for _ in range(6):
        (paths.data_dir() / CHOICES_FILE).unlink(missing_ok=True)  # measured again, not remembered
        job = window.session.load_model(str(exported.path))
        with qtbot.waitSignal(job.finished, timeout=20000):
            pass
        assert job.outcome == "succeeded" and window.session.predictor.runtime in exported.runtimes()
        qtbot.wait(100)  # the pooled thread's teardown runs here


def test_a_station_file_naming_an_exported_folder_opens_with_it_chosen(qtbot, window, exported, parts_dir, tmp_path):
    page = window.live_page
    station = tmp_path / "line1.toml"
    station.write_text(f'name = "line1"\nsource = "sim:{parts_dir}"\nmodel = "{exported.path}"\n', encoding="utf-8")
    assert page.open_station(station), window.message_bar.text.text()
    panel = page.source_panel
    assert panel.model_name() == str(exported.path) and "exported" in panel.model.currentText()
    assert "not a registered name" not in window.message_bar.text.text()
    with qtbot.waitSignal(page.refresh_models().finished, timeout=10000):
        pass  # the list made again (a model trained or promoted meanwhile) keeps the station's export
    assert panel.model.findData(str(exported.path)) >= 0 and panel.model_name() == str(exported.path)
