"""The Live page under pytest-qt (offscreen): start/stop on a video, feedback, pause on NG,
review of NG frames, retrain + promote (hot swap), history and CSV export."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, Qt  # noqa: E402

from inspector.data.images import list_images, write_image  # noqa: E402
from inspector.data.sources import write_video  # noqa: E402
from inspector.engine.bundle import ModelBundle  # noqa: E402
from inspector.engine.predictor import Predictor  # noqa: E402
from inspector.engine.registry import ModelRegistry  # noqa: E402
from inspector.engine.retrain import FeedbackPool, RetrainData  # noqa: E402
from tests.conftest import make_part  # noqa: E402
from tests.test_live import typical_goods, unmistakable_defect  # noqa: E402


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
    from inspector.gui.live_page import LivePage

    page = LivePage(registry=reg, store_path=tmp_path / "results.sqlite")
    qtbot.addWidget(page)
    page.resize(1200, 800)
    qtbot.waitUntil(lambda: page.model.count() == 1, timeout=10000)
    return page


def test_live_page_start_stop_feedback_and_history(qtbot, line, tmp_path):
    reg, video = line
    page = make_page(qtbot, reg, tmp_path)
    assert page.model.currentData() == "line" and not page.stop_button.isEnabled()
    page.source.setCurrentText(str(video))
    page.keep_ok.setValue(1)  # keep every OK image too

    with qtbot.waitSignal(page.started, timeout=10000):
        qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert page.is_running() and page.stop_button.isEnabled() and not page.start_button.isEnabled()
    qtbot.waitUntil(lambda: len(page.ng_history) >= 2 and page.shown is not None, timeout=15000)
    assert page.state_label.text() == "live"
    assert int(page.counters["inspected"].text()) > 0 and int(page.counters["ng"].text()) >= 1
    assert page.counters["model"].text() == "line@v1"
    assert page.view.has_image() and page.badge.decision in ("OK", "NG")

    # step back through the recent NG frames and mark one a false alarm
    page.step_ng(-1)
    assert page.reviewing and page.shown.decision == "NG" and page.badge.decision == "NG"
    marked = page.shown
    qtbot.mouseClick(page.false_alarm_button, Qt.MouseButton.LeftButton)
    assert page.store.get(marked.record_id).feedback == "false_alarm"
    assert FeedbackPool("line").counts()["good"] == 1 and "1 false alarm" in page.pool_label.text()
    page.back_to_live()
    assert not page.reviewing

    with qtbot.waitSignal(page.stopped, timeout=10000):
        qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    assert not page.is_running() and page.start_button.isEnabled()
    inspected = page.store.count()["total"]
    assert inspected >= int(page.counters["inspected"].text()) > 0
    assert all(r.image is not None for r in page.store.query())

    # the history tab lists what was stored; filters and CSV export
    page.tabs.setCurrentIndex(1)
    history = page.history
    assert history.table.rowCount() == inspected
    history.decision.setCurrentIndex(1)  # NG only
    assert history.table.rowCount() == page.store.count(decision="NG")["total"] >= 2
    history.feedback.setCurrentIndex(history.feedback.findData("false_alarm"))
    assert history.table.rowCount() == 1
    history.table.selectRow(0)
    assert history.preview.view.has_image()
    assert history.export_csv(tmp_path / "ng.csv") == 1
    page.shutdown()


def test_live_page_roi_pause_on_ng_retrain_and_promote(qtbot, line, parts_dir, tmp_path):
    reg, video = line
    page = make_page(qtbot, reg, tmp_path)
    page.confirm_dialogs = False
    page.source.setCurrentText(str(video))
    page.pause_on_ng.setChecked(True)
    page.set_roi((0, 0, 64, 64))
    assert page.roi_edit.text() == "0,0,64,64"
    with qtbot.waitSignal(page.started, timeout=10000):
        page.start()
    qtbot.waitUntil(lambda: page.live.paused, timeout=15000)
    page._tick()
    assert page.shown.decision == "NG" and page.resume_button.isEnabled()
    assert "paused on NG" in page.detail_label.text()
    assert page.view.roi == (0, 0, 64, 64)
    qtbot.mouseClick(page.confirmed_button, Qt.MouseButton.LeftButton)  # dealing with the part resumes
    assert not page.live.paused
    assert FeedbackPool("line").counts()["defects"] == 1
    page.pause_on_ng.setChecked(False)

    # draw a ROI with the mouse on the frame: the whole 64x64 frame area
    page.draw_roi.setChecked(True)
    rect = page.view.image_rect()
    qtbot.mousePress(page.view, Qt.MouseButton.LeftButton, pos=QPoint(int(rect.left()) + 1, int(rect.top()) + 1))
    qtbot.mouseMove(page.view, QPoint(int(rect.right()) - 1, int(rect.bottom()) - 1))
    qtbot.mouseRelease(page.view, Qt.MouseButton.LeftButton, pos=QPoint(int(rect.right()) - 1, int(rect.bottom()) - 1))
    x, y, w, h = page.live.roi
    assert x <= 1 and y <= 1 and w >= 60 and h >= 60 and not page.draw_roi.isChecked()

    # one click retrain while inspection goes on, then promote: hot-swapped
    held_out = tmp_path / "held-out"
    for i in range(8):
        write_image(held_out / f"g{i}.png", make_part(np.random.default_rng(200 + i)))
    data = RetrainData.from_paths(list_images(parts_dir), list_images(held_out))
    with qtbot.waitSignal(page.retrainFinished, timeout=60000) as finished:
        page.retrain(data=data, epochs=2)
        assert not page.retrain_button.isEnabled()
    result = finished.args[0]
    assert result.entry.version == 2 and result.entry.info.parent == "line@v1"
    assert page.is_running(), "inspection went on during the retrain"
    assert reg.active("line").version == 1 and page.versions.count() == 2

    from inspector.gui.live_page import ComparisonDialog

    dialog = ComparisonDialog(result, page)
    assert dialog.table.rowCount() == len(result.comparison.rows())
    dialog.deleteLater()

    with qtbot.waitSignal(page.modelSwapped, timeout=5000):
        page.activate_version(2)
    qtbot.waitUntil(lambda: page.live.last_result.model_version == 2, timeout=10000)
    assert page.is_running()
    page.activate_version(1)  # roll back
    qtbot.waitUntil(lambda: page.live.last_result.model_version == 1, timeout=10000)
    assert reg.active("line").version == 1
    page.shutdown()
    assert not page.is_running()


def test_live_page_reports_a_bad_source(qtbot, line, tmp_path):
    reg, _ = line
    page = make_page(qtbot, reg, tmp_path)
    page.source.setCurrentText(str(tmp_path / "no-such-video.avi"))
    page.start()
    assert not page.is_running() and "no such camera" in page.message_bar.text.text()
    page.roi_edit.setText("1,2")
    page._roi_typed()
    assert "ROI" in page.message_bar.text.text()


def test_the_main_window_has_the_live_page_and_closing_stops_it(qtbot, line, tmp_path):
    from inspector.gui.main_window import MainWindow

    reg, video = line
    window = MainWindow()
    window.confirm_close = False
    qtbot.addWidget(window)
    assert "live" in window.pages and window.pages["live"] is window.live_page
    page = window.live_page
    window.show_page("live")
    qtbot.waitUntil(lambda: page.model.count() == 1, timeout=10000)
    page.source.setCurrentText(str(video))
    with qtbot.waitSignal(page.started, timeout=10000):
        page.start()
    qtbot.waitUntil(lambda: page.shown is not None, timeout=10000)
    window.close()
    assert not page.is_running()
