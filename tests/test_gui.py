"""The desktop app, driven as a user would (pytest-qt, offscreen): each page's main flow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QInputDialog, QMessageBox

from tests.conftest import main_window, make_part

TINY = {"image_size": 32, "epochs": 2, "batch_size": 8, "params": {"width": 8}}


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def registered(tmp_home, tiny_bundle):
    """The shared tiny model stored as 'parts' in this test's registry (a copy of its metadata)."""
    from inspector.engine.bundle import ModelBundle, ModelInfo
    from inspector.engine.registry import ModelRegistry

    registry = ModelRegistry()
    registry.add(ModelBundle(tiny_bundle.model, ModelInfo.from_dict(tiny_bundle.info.to_dict())), "parts")
    return registry


@pytest.fixture(scope="module")
def defect_dir(tmp_path_factory):
    """An MVTec folder: 32 good parts to train on, 10 good and 10 painted defects to test."""
    from inspector.data.synthetic import paint_defect

    root = tmp_path_factory.mktemp("mvtec") / "rings"
    rng = np.random.default_rng(1)
    for sub, n in (("train/good", 32), ("test/good", 10)):
        (root / sub).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / sub / f"{i:03d}.png"), make_part(rng))
    (root / "test/scratch").mkdir(parents=True)
    for i in range(10):
        bad, _ = paint_defect(make_part(rng), rng, kind="blob", scale=1.5)
        cv2.imwrite(str(root / "test/scratch" / f"{i:03d}.png"), bad)
    return root


def load_model(qtbot, window, ref="parts"):
    with qtbot.waitSignal(window.session.modelChanged, timeout=20000):
        window.session.load_model(ref)
    return window.session.predictor


def click(qtbot, widget):
    assert widget.isEnabled(), f"{widget.text() if hasattr(widget, 'text') else widget} is disabled"
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def key(qtbot, window, sequence: str):
    """Press a shortcut as a user would (through the window's actions)."""
    from PySide6.QtGui import QKeySequence

    combo = QKeySequence(sequence)[0]
    window.activateWindow()
    QTest.keyClick(window, combo.key(), combo.keyboardModifiers())


def open_folder(qtbot, window, folder, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    key(qtbot, window, "Ctrl+O")
    qtbot.waitUntil(lambda: window.session.dataset is not None and window.session.dataset.root == Path(folder).resolve(), timeout=5000)


# --- data -------------------------------------------------------------------------------------------
def test_open_folder_shows_thumbnails_labels_and_counts(qtbot, window, parts_dir, monkeypatch):
    open_folder(qtbot, window, parts_dir, monkeypatch)
    page = window.data_page
    assert window.current_page() == "data"
    assert page.model.rowCount() == 40
    assert "<b>32</b> training (good)" in page.counts.text() and "<b>8</b> test good" in page.counts.text()
    qtbot.waitUntil(lambda: len(page.model.cache) == 40 and not page.model.loading(), timeout=10000)
    assert "all readable" in page.check_label.text()
    page.filter.setCurrentIndex(page.filter.findData("test_good"))
    assert page.proxy.rowCount() == 8


def test_corrupt_files_are_listed_with_the_reason(qtbot, window, parts_dir, tmp_path, monkeypatch):
    folder = tmp_path / "camera"
    folder.mkdir()
    for path in sorted(parts_dir.iterdir())[:6]:
        shutil.copy(path, folder)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "empty.jpg").write_bytes(b"")
    open_folder(qtbot, window, folder, monkeypatch)
    page = window.data_page
    qtbot.waitUntil(lambda: page.errors.topLevelItemCount() == 2, timeout=10000)
    reasons = {Path(page.errors.topLevelItem(i).text(0)).name: page.errors.topLevelItem(i).text(1) for i in range(2)}
    assert reasons["empty.jpg"] == "empty file"
    assert "not a decodable image" in reasons["broken.png"]
    assert "<b>2</b> unreadable" in page.counts.text()
    page.filter.setCurrentIndex(page.filter.findData("unreadable"))
    assert page.proxy.rowCount() == 2


def test_dropping_images_adds_them_to_the_good_set(qtbot, window, parts_dir, tmp_path, monkeypatch):
    folder = tmp_path / "line"
    shutil.copytree(parts_dir, folder)
    open_folder(qtbot, window, folder, monkeypatch)
    new = tmp_path / "new"
    new.mkdir()
    rng = np.random.default_rng(7)
    for i in range(3):
        cv2.imwrite(str(new / f"extra_{i}.png"), make_part(rng))
    (new / "notes.txt").write_text("not an image")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in sorted(new.iterdir())])
    drop = QDropEvent(QPointF(30, 30), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.session.datasetChanged, timeout=10000):
        window.data_page.grid.dropEvent(drop)  # what Qt calls when files from a file manager are dropped
    assert drop.isAccepted()
    assert window.data_page.model.rowCount() == 43
    assert all((folder / f"extra_{i}.png").is_file() for i in range(3))
    assert window.message_bar.isVisible() and "notes.txt" in window.message_bar.text.text()


# --- train --------------------------------------------------------------------------------------------
def test_short_training_lands_in_the_registry(qtbot, window, parts_dir, monkeypatch):
    from inspector.engine.registry import ModelRegistry

    open_folder(qtbot, window, parts_dir, monkeypatch)
    page = window.train_page
    key(qtbot, window, "Ctrl+2")
    assert window.current_page() == "train"
    page.select_method("ganomaly")
    page.set_form(**TINY)
    with qtbot.waitSignal(page.trainingFinished, timeout=60000) as finished:
        click(qtbot, page.start_button)
        assert page.is_running() and not page.start_button.isEnabled()
    entry = finished.args[0]
    assert entry.info.ref == f"{parts_dir.name}-ganomaly@v1"
    assert [e.info.ref for e in ModelRegistry().versions(entry.name)] == [entry.info.ref]
    assert entry.info.config["image_size"] == 32 and entry.info.training["config"]["epochs"] == 2
    assert window.session.predictor.info.ref == entry.info.ref  # loaded right away
    assert page.view.loss_plot.steps and page.view.samples.view.has_image()
    assert "threshold" in page.view.summary.text()
    qtbot.waitUntil(lambda: window.models_page.tree.topLevelItemCount() == 1, timeout=10000)


def test_cancelled_training_stores_nothing_and_the_window_stays_usable(qtbot, window, parts_dir, monkeypatch):
    from inspector.engine.registry import ModelRegistry

    open_folder(qtbot, window, parts_dir, monkeypatch)
    page = window.train_page
    page.select_method("ganomaly")
    page.set_form(**{**TINY, "epochs": 500})
    key(qtbot, window, "Ctrl+T")
    qtbot.waitUntil(lambda: page.view.progress.value() > 0, timeout=30000)
    with qtbot.waitSignal(page.trainingCancelled, timeout=30000):
        key(qtbot, window, "Esc")
    assert ModelRegistry().names() == []
    assert "cancelled" in page.view.status.text() and page.start_button.isEnabled()
    key(qtbot, window, "Ctrl+5")  # still answers the keyboard
    assert window.current_page() == "models"
    window.data_page.filter.setCurrentIndex(1)
    assert window.data_page.proxy.rowCount() == 32


def test_advise_button_compares_methods_and_puts_the_pick_on_the_form(qtbot, window, parts_dir, monkeypatch):
    from inspector.engine import advise
    from inspector.gui.widgets.advice_dialog import AdviceDialog

    monkeypatch.setattr(advise, "CANDIDATES", (  # quick candidates: the real advisor, smaller settings
        advise.Candidate("ganomaly", image_size=32, epochs=2, params={"width": 8, "nz": 16}),
        advise.Candidate("autoencoder", image_size=32, epochs=2, params={"width": 8}),
    ))
    open_folder(qtbot, window, parts_dir, monkeypatch)
    page = window.train_page
    page.select_method("skip-ganomaly")
    page.confirm_dialogs = False
    assert page.advise_button.isEnabled()
    click(qtbot, page.advise_button)
    job = page.advice_job
    assert job is not None and not page.advise_button.isEnabled()
    qtbot.waitUntil(lambda: not job.running, timeout=120000)
    advice = page.advice
    assert job.outcome == "succeeded" and advice.recommended in ("ganomaly", "autoencoder")
    assert page.current_method().name == advice.recommended and "Advisor:" in page.view.status.text()
    dialog = AdviceDialog(advice, page)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 2 and dialog.use_button.text() == f"Use {advice.recommended}"
    assert page.advise_button.isEnabled()


def test_training_started_again_after_a_cancel_resumes_from_its_checkpoint(qtbot, window, tmp_home, parts_dir, monkeypatch):
    """Ctrl+T works again after a cancel, and the same settings say they resume."""
    open_folder(qtbot, window, parts_dir, monkeypatch)
    page = window.train_page
    page.select_method("ganomaly")
    page.set_form(**{**TINY, "epochs": 500})
    key(qtbot, window, "Ctrl+T")
    qtbot.waitUntil(lambda: any(tmp_home.rglob("*.ckpt")), timeout=30000)  # an epoch is done
    with qtbot.waitSignal(page.trainingCancelled, timeout=30000):
        key(qtbot, window, "Esc")
    messages = []
    window.session.info.connect(messages.append)
    window.session.error.connect(messages.append)
    key(qtbot, window, "Ctrl+T")
    qtbot.waitUntil(lambda: any(m.startswith("Resuming from epoch") for m in messages), timeout=30000)
    with qtbot.waitSignal(page.trainingCancelled, timeout=30000):
        key(qtbot, window, "Esc")


def test_a_method_that_cannot_be_imported_is_listed_disabled_with_the_reason(qtbot, tmp_home, monkeypatch):
    from inspector.gui.main_window import MainWindow
    from inspector.models import registry

    monkeypatch.setitem(registry._METHODS, "broken-method", "inspector.models.no_such_package")
    w = MainWindow()
    qtbot.addWidget(w)
    w.start()
    qtbot.waitUntil(lambda: w.methods_ready, timeout=30000)
    combo = w.train_page.method
    index = combo.findData("broken-method")
    assert index >= 0 and not combo.model().item(index).isEnabled()
    assert "ModuleNotFoundError" in combo.itemData(index, Qt.ItemDataRole.ToolTipRole)
    assert combo.findData("ganomaly") >= 0 and combo.model().item(combo.findData("ganomaly")).isEnabled()
    w.confirm_close = False
    w.close()


# --- results ------------------------------------------------------------------------------------------
def test_results_show_three_views_score_and_decision_and_step_with_the_keyboard(qtbot, window, registered, parts_dir, monkeypatch):
    open_folder(qtbot, window, parts_dir, monkeypatch)
    load_model(qtbot, window)
    key(qtbot, window, "Ctrl+3")
    page = window.results_page
    rect = page.table.visualRect(page.proxy.index(0, 0))
    with qtbot.waitSignal(page.predictionShown, timeout=10000) as shown:
        qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    first = shown.args[0]
    view = page.view
    assert all(v.view.has_image() for v in (view.original, view.reconstruction, view.heat, view.overlay))
    assert view.badge.decision in ("OK", "NG") and f"{first.score:.5g}" in view.score.text()
    before = view.overlay.view.image().copy()
    view.opacity.setValue(100 if view.opacity.value() < 100 else 0)
    assert not np.array_equal(before, view.overlay.view.image())
    with qtbot.waitSignal(page.predictionShown, timeout=10000) as shown:
        key(qtbot, window, "N")
    assert shown.args[0].path != first.path
    key(qtbot, window, "Ctrl+R")
    assert page.score_job is not None and page.job_progress.isVisible()
    with qtbot.waitSignal(page.score_job.finished, timeout=20000):
        pass
    assert len(window.session.scores) == 40
    page.sort.setCurrentIndex(1)  # highest score first
    scores = [float(page.proxy.index(r, 3).data()) for r in range(page.proxy.rowCount())]
    assert scores == sorted(scores, reverse=True)
    page.filter.setCurrentIndex(page.filter.findData("NG"))
    assert all(page.proxy.index(r, 4).data() == "NG" for r in range(page.proxy.rowCount()))


# --- evaluate -----------------------------------------------------------------------------------------
def evaluate(qtbot, window):
    page = window.evaluate_page
    with qtbot.waitSignal(page.evaluated, timeout=30000):
        key(qtbot, window, "Ctrl+E")
    return page


def drag_line(qtbot, plot, to_value: float) -> None:
    """Press on the threshold line and drag it with the mouse."""
    vb = plot.plot_item.vb
    y = sum(vb.viewRange()[1]) / 2
    start = plot.mapFromScene(vb.mapViewToScene(QPointF(plot.line.value(), y)))
    end = plot.mapFromScene(vb.mapViewToScene(QPointF(to_value, y)))
    viewport = plot.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, 11):
        QTest.mouseMove(viewport, start + (end - start) * (i / 10))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def test_dragging_the_threshold_updates_confusion_metrics_and_marks_and_saves_a_version(
    qtbot, window, registered, defect_dir, monkeypatch
):
    open_folder(qtbot, window, defect_dir, monkeypatch)
    load_model(qtbot, window)
    page = evaluate(qtbot, window)
    result = page.scoreset
    assert not result.synthetic and result.n_defect == 10 and result.n_good == 10
    assert page.matrix_stack.currentWidget() is page.confusion
    before = dict(page.confusion.counts)
    assert sum(before.values()) == 20
    # drag the line to just above the highest score: everything passes
    target = float(result.scores.max()) * 1.05
    drag_line(qtbot, page.histogram, target)
    assert window.session.threshold == pytest.approx(target, rel=0.05)
    after = page.confusion.counts
    assert after != before and after["tp"] == 0 and after["fp"] == 0
    assert page.recall.text() == "0.0 %"
    # the OK/NG marks everywhere follow: results table and thumbnails
    results = window.results_page
    assert {results.model.index(r, 4).data() for r in range(results.model.rowCount()) if results.model.index(r, 3).data()} == {"OK"}
    from inspector.gui.widgets.thumbnails import DecisionRole

    thumbs = window.data_page.model
    assert {thumbs.index(r).data(DecisionRole) for r in range(thumbs.rowCount())} == {"OK", ""}  # "": not scored
    # the spin box is the same mechanism
    page.threshold.setValue(float(np.median(result.scores)))
    assert window.session.threshold == pytest.approx(float(np.median(result.scores)), rel=1e-4)
    assert page.confusion.counts["tp"] + page.confusion.counts["fp"] > 0
    assert page.save_button.isEnabled()
    # save: a new version whose parent is the loaded one
    key(qtbot, window, "Ctrl+S")
    versions = registered.versions("parts")
    assert [e.version for e in versions] == [1, 2]
    saved = versions[-1].info
    assert saved.parent == "parts@v1" and saved.threshold.method == "manual"
    assert saved.threshold.value == pytest.approx(window.session.threshold)
    assert window.session.predictor.info.ref == "parts@v2" and not window.session.threshold_modified
    assert versions[0].info.threshold.method != "manual"  # the old version is untouched


def test_good_only_data_shows_false_alarms_and_synthetic_defects(qtbot, window, registered, parts_dir, monkeypatch):
    open_folder(qtbot, window, parts_dir, monkeypatch)
    load_model(qtbot, window)
    page = evaluate(qtbot, window)
    assert page.scoreset.synthetic and page.scoreset.n_good == 8 and page.scoreset.n_defect >= 32
    assert page.matrix_stack.currentWidget() is page.good_only
    text = page.good_only.text()
    assert "false alarms on held-out good images" in text and "synthetic defects caught" in text
    page.threshold.setValue(float(page.scoreset.scores.max()) + 1)
    assert "<b>0.0 %</b> false alarms" in page.good_only.text()


# --- models -------------------------------------------------------------------------------------------
def test_models_page_load_rename_export_compare_delete(qtbot, window, registered, tiny_bundle, parts_dir, tmp_path, monkeypatch):
    from inspector.engine.bundle import ModelBundle, ModelInfo

    info = ModelInfo.from_dict(tiny_bundle.info.to_dict())
    info.threshold.value *= 2
    registered.add(ModelBundle(tiny_bundle.model, info), "strict")
    open_folder(qtbot, window, parts_dir, monkeypatch)
    page = window.models_page
    with qtbot.waitSignal(page.refreshed, timeout=10000):
        key(qtbot, window, "F5")
    assert page.tree.topLevelItemCount() == 2
    # load
    assert page.select("parts@v1")
    with qtbot.waitSignal(page.modelLoaded, timeout=20000):
        click(qtbot, page.buttons["load"])
    assert window.session.predictor.info.ref == "parts@v1"
    assert "parts@v1" in page.details.toPlainText() and "Lineage" in page.details.toPlainText()
    # rename (the loaded model follows)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("cells", True))
    with qtbot.waitSignal(page.refreshed, timeout=20000):
        click(qtbot, page.buttons["rename"])
    assert registered.names() == ["cells", "strict"] and window.session.predictor.info.ref == "cells@v1"
    # export
    dest = tmp_path / "out" / "cells.inspector"
    dest.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(dest), ""))
    assert page.select("cells@v1")
    click(qtbot, page.buttons["export"])
    assert dest.is_file() and dest.stat().st_size == registered.resolve("cells").stat().st_size
    # compare two models on the same data
    page.select("cells@v1")
    item = next(page.tree.topLevelItem(i) for i in range(2) if page.tree.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole) == "strict")
    item.child(0).setSelected(True)
    with qtbot.waitSignal(page.compared, timeout=30000) as compared:
        click(qtbot, page.buttons["compare"])
    a, b = compared.args[0]
    assert len(a.scores) == len(b.scores) and np.allclose(a.scores, b.scores)  # same weights
    assert b.threshold == pytest.approx(2 * a.threshold)
    assert page.compare_view.metrics.rowCount() >= 8 and page.compare_view.scores.rowCount() == len(a.scores)
    # delete, after confirming
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    page.select("strict")
    with qtbot.waitSignal(page.refreshed, timeout=10000):
        click(qtbot, page.buttons["delete"])
    assert asked and "strict" in asked[0]
    assert registered.names() == ["cells"]


# --- the app as a whole -------------------------------------------------------------------------------
def test_layout_folder_and_model_persist_between_runs(qtbot, tmp_home, registered, parts_dir, monkeypatch):
    from inspector.gui.main_window import MainWindow

    first = MainWindow()
    qtbot.addWidget(first)
    first.show()
    first.resize(first.minimumSizeHint().width(), 640)  # within the offscreen screen
    size = (first.width(), first.height())
    first.data_page.open_folder(parts_dir)
    with qtbot.waitSignal(first.session.modelChanged, timeout=20000):
        first.session.load_model("parts").succeeded.connect(lambda p: setattr(first.settings, "last_model", p.info.ref))
    first.results_page.view.opacity.setValue(80)
    first.show_page("evaluate")
    first.close()

    second = MainWindow()
    qtbot.addWidget(second)
    second.show()
    second.start()
    qtbot.waitUntil(lambda: second.session.predictor is not None, timeout=20000)
    assert (second.width(), second.height()) == size
    assert second.session.dataset.root == parts_dir.resolve()
    assert second.session.predictor.info.ref == "parts@v1"
    assert second.results_page.view.opacity.value() == 80
    assert second.current_page() == "evaluate"
    second.close()


def test_errors_are_shown_and_logged_never_fatal(qtbot, window, tmp_home, tmp_path):
    from inspector.gui import app

    assert not window.data_page.open_folder(tmp_path / "does-not-exist")
    assert window.message_bar.isVisible() and window.message_bar.level == "error"
    assert "does-not-exist" in window.message_bar.text.text()
    window.session.load_model("no-such-model")
    qtbot.waitUntil(lambda: "no-such-model" in window.message_bar.text.text(), timeout=20000)
    app.setup_logging()
    try:
        raise ValueError("a bug somewhere in a slot")
    except ValueError:
        app.show_unexpected_error(*sys.exc_info())
    assert app._boxes and "a bug somewhere" in app._boxes[-1].text()
    for box in list(app._boxes):
        box.close()
    log = (tmp_home / "logs" / "inspector.log").read_text()
    assert "a bug somewhere in a slot" in log and "Traceback" in log
    assert window.isVisible()


def test_other_modules_can_add_a_page(qtbot, window):
    from PySide6.QtWidgets import QLabel

    pages = window.nav.count()
    window.add_page("extra", "Extra", QLabel("another page"), shortcut="Ctrl+9")
    assert window.nav.count() == pages + 1 and "page_extra" in window.actions_
    key(qtbot, window, "Ctrl+9")
    assert window.current_page() == "extra"


def test_dark_theme_keeps_plots_readable(qtbot, window):
    from PySide6.QtGui import QPalette

    from inspector.gui.app import apply_theme

    try:
        apply_theme(QApplication.instance(), "dark")
        qtbot.wait(50)
        plot = window.evaluate_page.histogram
        assert plot.backgroundBrush().color() == window.palette().color(QPalette.ColorRole.Base)
        assert window.palette().color(QPalette.ColorRole.Window).lightness() < 80
        assert window.results_page.table.palette().color(QPalette.ColorRole.Base).lightness() < 80
        assert window.train_page.start_button.palette().color(QPalette.ColorRole.Button).lightness() < 80
    finally:
        apply_theme(QApplication.instance(), "system")


def test_demo_opens_the_app_and_trains_in_the_background(qtbot, window, parts_dir, monkeypatch):
    """`inspector demo`: the demo data opens; with no demo model, its training starts in the app."""
    from inspector.data import elpv
    from inspector.data.datasets import open_dataset
    from inspector.engine.registry import ModelRegistry

    monkeypatch.setattr(elpv, "materialise_elpv", lambda folder, progress=None: open_dataset(parts_dir))
    page = window.train_page
    page.set_form(image_size=32, batch_size=8, params={"width": 8})
    page.preset.setCurrentText("Custom")
    with qtbot.waitSignal(page.trainingStarted, timeout=20000):
        window.start_demo(train=True, epochs=2)
    assert window.session.dataset.root == parts_dir
    assert window.current_page() == "train" and page.name.text() == "elpv-demo"
    key(qtbot, window, "Ctrl+1")  # usable while it trains
    assert window.current_page() == "data"
    with qtbot.waitSignal(page.trainingFinished, timeout=60000):
        pass
    info = ModelRegistry().latest("elpv-demo").info
    assert info.method == "patchcore" and info.training["config"]["epochs"] == 2
    # then the test split is scored without a click: the Evaluate page and the Results page show it
    qtbot.waitUntil(lambda: window.evaluate_page.scoreset is not None, timeout=60000)
    assert window.current_page() == "evaluate"
    assert all(s.path in window.session.scores for s in window.session.dataset.test)


def test_many_signals_do_not_wear_out_true_and_none(qtbot):
    """PySide6 6.12.0 drops a reference to True per emit: without inspector.gui.qt_compat this aborts Python."""
    from PySide6.QtCore import QObject, QTimer, Signal

    import inspector.gui  # noqa: F401 — applies the work-around where needed

    class Emitter(QObject):
        ping = Signal(object)

    emitter = Emitter()
    emitter.ping.connect(lambda value: None)
    for _ in range(300_000):
        emitter.ping.emit(None)
    for _ in range(2000):
        QTimer.singleShot(0, lambda: None)
    qtbot.wait(10)
    assert sys.getrefcount(True) > 1000 and sys.getrefcount(None) > 1000


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run")
def test_qt_garbage_is_freed_on_the_ui_thread_never_by_a_job(qtbot):
    """A Qt object caught in a reference cycle must not be destroyed by a worker thread that happens to
    trigger Python's cycle collector (with PySide6 that deadlocked a training in CI)."""
    import threading
    import weakref

    from PySide6.QtCore import QObject

    from inspector.gui.workers import run_job

    freed_on: list[str] = []
    orphan = QObject()
    orphan.itself = orphan  # a cycle: only the cycle collector can free it
    keep = weakref.ref(orphan, lambda _: freed_on.append(threading.current_thread().name))
    del orphan

    def allocate(report, cancel):  # far past every collection threshold; kept alive, so the count stays up
        return [[i] for i in range(200_000)]

    job = run_job("allocating", allocate)
    kept = []
    job.succeeded.connect(kept.append)
    with qtbot.waitSignal(job.finished, timeout=20000):
        pass
    assert freed_on == [] or freed_on == [threading.main_thread().name]
    qtbot.waitUntil(lambda: keep() is None, timeout=5000)  # the UI thread's collector frees it
    assert freed_on == [threading.main_thread().name]


def test_the_real_app_starts_under_xvfb_and_draws_its_window(tmp_path, parts_dir):
    shot = tmp_path / "window.png"
    env = {**os.environ, "INSPECTOR_HOME": str(tmp_path / "home")}
    env.pop("QT_QPA_PLATFORM", None)  # the real X platform
    command = ["xvfb-run", "-a", "-s", "-screen 0 1400x900x24",
               sys.executable, "-m", "inspector.cli", "gui", "--data", str(parts_dir), "--screenshot", str(shot)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[0] > 300 and image.shape[1] > 400
    assert image.std() > 10 and len(np.unique(image.reshape(-1, 3), axis=0)) > 100  # not a blank window


def test_a_fit_only_method_has_no_epochs_to_set(qtbot, window, parts_dir, monkeypatch):
    open_folder(qtbot, window, parts_dir, monkeypatch)
    page = window.train_page
    page.select_method("patchcore")
    assert not page.epochs.isEnabled() and "one pass" in page.epochs.toolTip()
    page.preset.setCurrentText("Thorough")
    assert page.epochs.value() == 1 and page.image_size.currentData() == 128
    page.select_method("ganomaly")
    assert page.epochs.isEnabled()


@pytest.mark.parametrize("has_bf16", [False, True])
def test_the_bf16_box_follows_the_cpu_and_a_bf16_training_says_so(qtbot, tmp_home, parts_dir, monkeypatch, has_bf16):
    """Offered, and on, only where the CPU computes bfloat16 (here its instructions are pretended,
    so torch emulates them); the model's training details say what the steps computed in."""
    monkeypatch.setattr("inspector.gui.pages.train_page.cpu_bf16", lambda: has_bf16)
    monkeypatch.setattr("inspector.engine.trainer.cpu_bf16", lambda: has_bf16)
    with main_window(qtbot) as w:
        page = w.train_page
        assert page.bf16.isEnabled() == page.bf16.isChecked() == has_bf16
        if not has_bf16:
            assert "no bfloat16 instructions" in page.bf16.toolTip()
            return
        open_folder(qtbot, w, parts_dir, monkeypatch)
        page.select_method("ganomaly")
        page.set_form(**TINY)
        with qtbot.waitSignal(page.trainingFinished, timeout=60000) as finished:
            click(qtbot, page.start_button)
        training = finished.args[0].info.training
        assert training["config"]["bf16"] and training["precision"] == "bfloat16 mixed"
        w.show_page("models")
        qtbot.waitUntil(lambda: w.models_page.select(finished.args[0].info.ref), timeout=10000)
        assert "bfloat16 mixed" in w.models_page.details.toPlainText()
