"""The Live page under pytest-qt (offscreen): start/stop on a video, feedback, pause on NG,
review of NG frames, retrain + promote (hot swap), history and CSV export."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, Qt

from inspector.data.images import list_images, write_image
from inspector.data.sources import write_video
from inspector.engine.bundle import ModelBundle
from inspector.engine.predictor import Predictor
from inspector.engine.registry import ModelRegistry
from inspector.engine.retrain import FeedbackPool, RetrainData
from tests.conftest import make_part
from tests.test_live import typical_goods, unmistakable_defect


def fresh(bundle: ModelBundle) -> ModelBundle:
    return ModelBundle(copy.deepcopy(bundle.model), copy.deepcopy(bundle.info))


@pytest.fixture
def line(tiny_bundle, tmp_home, tmp_path):
    """A registered model 'line' and a looping video of good parts with a defect every 6 frames."""
    reg = ModelRegistry()
    reg.add(fresh(tiny_bundle), "line")
    predictor = Predictor(reg.load("line"), "cpu")
    rng = np.random.default_rng(8)
    goods = typical_goods(predictor, rng, 10)
    frames = []
    for i in range(12):
        frames.append(unmistakable_defect(predictor, rng) if i % 6 == 3 else goods[i % len(goods)])
    video = write_video(tmp_path / "line.avi", frames, fps=60)
    return reg, video


def make_page(qtbot, reg, tmp_path):
    from inspector.gui.pages.live.page import LivePage

    page = LivePage(registry=reg, store_path=tmp_path / "results.sqlite")
    qtbot.addWidget(page)
    page.resize(1200, 800)
    qtbot.waitUntil(lambda: page.source_panel.model.count() == 1, timeout=10000)
    return page


def test_live_page_start_stop_feedback_and_history(qtbot, line, tmp_path):
    reg, video = line
    page = make_page(qtbot, reg, tmp_path)
    sources, view, counters, feedback = page.source_panel, page.live_view, page.counters.labels, page.feedback
    assert sources.model.currentData() == "line" and not sources.stop_button.isEnabled()
    sources.source.setCurrentText(str(video))
    sources.keep_ok.setValue(1)  # keep every OK image too

    with qtbot.waitSignal(page.started, timeout=10000):
        qtbot.mouseClick(sources.start_button, Qt.MouseButton.LeftButton)
    assert page.is_running() and sources.stop_button.isEnabled() and not sources.start_button.isEnabled()
    qtbot.waitUntil(lambda: len(view.ng_history) >= 2 and page.shown is not None, timeout=15000)
    assert view.state_label.text() == "live"
    assert int(counters["inspected"].text()) > 0 and int(counters["ng"].text()) >= 1
    assert counters["model"].text() == "line@v1"
    assert view.view.has_image() and view.badge.decision in ("OK", "NG")

    # step back through the recent NG frames (Page Up) and mark one a false alarm
    with qtbot.waitActive(page, timeout=5000):
        page.show()
        page.activateWindow()
    view.prev_ng.setFocus()
    qtbot.keyClick(view.prev_ng, Qt.Key.Key_PageUp)
    assert view.reviewing and page.shown.decision == "NG" and view.badge.decision == "NG"
    assert view.ng_label.text().startswith("NG ") and "(recent)" in view.ng_label.text()
    marked = page.shown
    qtbot.mouseClick(feedback.false_alarm_button, Qt.MouseButton.LeftButton)
    store = page.controller.store
    assert store.get(marked.record_id).feedback == "false_alarm"
    assert FeedbackPool("line").counts()["good"] == 1 and "1 false alarm" in feedback.pool_label.text()
    page.back_to_live()
    assert not view.reviewing

    with qtbot.waitSignal(page.stopped, timeout=10000):
        qtbot.mouseClick(sources.stop_button, Qt.MouseButton.LeftButton)
    assert not page.is_running() and sources.start_button.isEnabled()
    inspected = store.count()["total"]
    assert inspected >= int(counters["inspected"].text()) > 0
    assert all(r.image is not None for r in store.query())

    # the History page lists what was stored; filters and CSV export
    from inspector.gui.pages.history_page import HistoryPage

    history = HistoryPage(open_store=page.controller.existing_store)
    qtbot.addWidget(history)
    history.reload()
    assert history.store is store and history.table.rowCount() == inspected
    history.decision.setCurrentIndex(1)  # NG only
    assert history.table.rowCount() == store.count(decision="NG")["total"] >= 2
    history.feedback.setCurrentIndex(history.feedback.findData("false_alarm"))
    assert history.table.rowCount() == 1
    history.table.selectRow(0)
    assert history.preview.view.has_image()
    assert history.export_csv(tmp_path / "ng.csv") == 1
    page.shutdown()


def test_live_page_roi_pause_on_ng_retrain_and_promote(qtbot, line, parts_dir, tmp_path):
    reg, video = line
    page = make_page(qtbot, reg, tmp_path)
    view, feedback = page.live_view, page.feedback
    page.confirm_dialogs = False
    page.source_panel.source.setCurrentText(str(video))
    view.pause_on_ng.setChecked(True)
    page.set_roi((0, 0, 64, 64))
    assert view.roi_edit.text() == "0,0,64,64"
    with qtbot.waitSignal(page.started, timeout=10000):
        page.start()
    live = page.controller.live
    qtbot.waitUntil(lambda: live.paused, timeout=15000)
    page._tick()
    assert page.shown.decision == "NG" and view.resume_button.isEnabled()
    assert "paused on NG" in view.detail_label.text()
    assert view.view.roi == (0, 0, 64, 64)
    qtbot.mouseClick(feedback.confirmed_button, Qt.MouseButton.LeftButton)  # dealing with the part resumes
    assert not live.paused
    assert FeedbackPool("line").counts()["defects"] == 1
    view.pause_on_ng.setChecked(False)
    assert not live.pause_on_ng

    # draw a ROI with the mouse on the frame: the whole 64x64 frame area
    view.draw_roi.setChecked(True)
    frame = view.view
    rect = frame.image_rect()
    qtbot.mousePress(frame, Qt.MouseButton.LeftButton, pos=QPoint(int(rect.left()) + 1, int(rect.top()) + 1))
    qtbot.mouseMove(frame, QPoint(int(rect.right()) - 1, int(rect.bottom()) - 1))
    qtbot.mouseRelease(frame, Qt.MouseButton.LeftButton, pos=QPoint(int(rect.right()) - 1, int(rect.bottom()) - 1))
    x, y, w, h = live.roi
    assert x <= 1 and y <= 1 and w >= 60 and h >= 60 and not view.draw_roi.isChecked()

    # one click retrain while inspection goes on, then promote: hot-swapped
    held_out = tmp_path / "held-out"
    for i in range(8):
        write_image(held_out / f"g{i}.png", make_part(np.random.default_rng(200 + i)))
    data = RetrainData.from_paths(list_images(parts_dir), list_images(held_out))
    with qtbot.waitSignal(page.retrainFinished, timeout=60000) as finished:
        page.retrain(data=data, epochs=2)
        assert not feedback.retrain_button.isEnabled()
    result = finished.args[0]
    assert result.entry.version == 2 and result.entry.info.parent == "line@v1"
    assert page.is_running(), "inspection went on during the retrain"
    assert reg.active("line").version == 1 and feedback.versions.count() == 2

    from inspector.gui.pages.live.comparison_dialog import ComparisonDialog

    dialog = ComparisonDialog(result, page)
    assert dialog.table.rowCount() == len(result.comparison.rows())
    dialog.deleteLater()

    feedback.versions.setCurrentIndex(feedback.versions.findData(2))
    with qtbot.waitSignal(page.modelSwapped, timeout=5000):
        qtbot.mouseClick(feedback.use_version, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: live.last_result.model_version == 2, timeout=10000)
    assert page.is_running() and "(v2 in use)" in page.source_panel.model.currentText()
    page.promote(1)  # roll back
    qtbot.waitUntil(lambda: live.last_result.model_version == 1, timeout=10000)
    assert reg.active("line").version == 1
    page.discard(2)
    assert [e.version for e in reg.versions("line")] == [1] and feedback.versions.count() == 1
    page.shutdown()
    assert not page.is_running()


def test_live_page_reports_a_bad_source(qtbot, line, tmp_path):
    reg, _ = line
    page = make_page(qtbot, reg, tmp_path)
    page.source_panel.source.setCurrentText(str(tmp_path / "no-such-video.avi"))
    page.start()
    assert not page.is_running() and "no such camera" in page.message_bar.text.text()
    page.live_view.roi_edit.setText("1,2")
    page.live_view.roi_edit.editingFinished.emit()
    assert "ROI" in page.message_bar.text.text() and page.message_bar.level == "warning"


def test_the_main_window_has_live_and_history_pages_and_closing_stops_the_run(qtbot, line, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from inspector.gui.main_window import MainWindow

    reg, video = line
    window = MainWindow()
    qtbot.addWidget(window)
    assert window.pages["live"] is window.live_page and window.pages["history"] is window.history_page
    page = window.live_page
    assert page.message_bar is None  # its messages go to the window's strip
    with qtbot.waitActive(window, timeout=5000):
        window.show()
        window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_7, Qt.KeyboardModifier.ControlModifier)
    assert window.current_page() == "history" and window.history_page.store is None  # no database before a run
    assert "No results database yet" in window.history_page.summary.text()
    qtbot.keyClick(window, Qt.Key.Key_6, Qt.KeyboardModifier.ControlModifier)
    assert window.current_page() == "live"
    qtbot.waitUntil(lambda: page.source_panel.model.count() == 1, timeout=10000)
    page.source_panel.source.setCurrentText(str(video))
    with qtbot.waitSignal(page.started, timeout=10000):
        page.start()
    qtbot.waitUntil(lambda: page.shown is not None and len(page.live_view.ng_history) > 0, timeout=15000)
    # Page Up reviews an NG frame and Esc comes back to live: one Esc in the window, never two
    # shortcuts on the same key (Qt then runs neither)
    page.live_view.prev_ng.setFocus()
    qtbot.keyClick(page.live_view.prev_ng, Qt.Key.Key_PageUp)
    assert page.live_view.reviewing
    qtbot.keyClick(page.live_view.prev_ng, Qt.Key.Key_Escape)
    assert not page.live_view.reviewing and page.is_running()
    page.set_roi_text("1,2")
    assert "ROI" in window.message_bar.text.text()

    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[1]) or QMessageBox.StandardButton.No)
    assert not window.close()  # answered No: the window stays and inspection goes on
    assert asked == ["Quit during live inspection?"] and page.is_running()

    store = page.controller.store
    window.show_page("history")  # what the run stored so far (shown: the page opens the database)
    assert window.history_page.store is store and window.history_page.table.rowCount() >= 1
    window.confirm_close = False
    window.close()
    assert not page.is_running() and page.controller.store is None


def test_simulated_line_is_one_click_on_the_demo_test_cells(qtbot, line, tmp_path):
    """Without a camera: the button feeds the demo's test split (good and defective parts) as a line."""
    from inspector.engine.demo import demo_data_dir

    reg, _ = line
    predictor = Predictor(reg.load("line"), "cpu")
    rng = np.random.default_rng(3)
    test = demo_data_dir() / "test"
    for i, image in enumerate(typical_goods(predictor, rng, 3)):
        write_image(test / "good" / f"{i}.png", image)
    write_image(test / "defect" / "0.png", unmistakable_defect(predictor, rng))
    page = make_page(qtbot, reg, tmp_path)
    sources = page.source_panel
    qtbot.mouseClick(sources.simulate_button, Qt.MouseButton.LeftButton)
    assert sources.source_text() == f"sim:{test}"
    with qtbot.waitSignal(page.started, timeout=10000):
        qtbot.mouseClick(sources.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(page.live_view.ng_history) >= 1, timeout=15000)  # the defective cell comes round
    assert page.live_view.ng_history[-1].frame.name == "defect/0.png"
    with qtbot.waitSignal(page.stopped, timeout=10000):
        page.stop()
    rows = page.controller.existing_store().query(newest_first=False)
    assert {r.frame_name for r in rows} <= {"good/0.png", "good/1.png", "good/2.png", "defect/0.png"}
    assert all(r.decision == ("NG" if r.frame_name == "defect/0.png" else "OK") for r in rows)
