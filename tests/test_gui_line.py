"""The Live page's Line I/O panel under pytest-qt (offscreen): sink addresses checked as they are
added, station files saved and opened (a bad one changes nothing), a test verdict, and a live run
delivering to a real HTTP receiver that goes down and comes back."""

from __future__ import annotations

import copy

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt

from inspector.engine.bundle import ModelBundle
from inspector.engine.registry import ModelRegistry
from inspector.engine.station import Station
from inspector.gui.pages.live.line_panel import BACKLOG, DELIVERED, LATENCY, STATE
from inspector.gui.widgets.decision import NG_COLOR
from tests.line.servers import Receiver, in_order_once


def fresh(bundle: ModelBundle) -> ModelBundle:
    return ModelBundle(copy.deepcopy(bundle.model), copy.deepcopy(bundle.info))


@pytest.fixture
def registry(tiny_bundle, tmp_home):
    reg = ModelRegistry()
    reg.add(fresh(tiny_bundle), "line")
    return reg


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def make_page(qtbot, reg, tmp_path, models: int = 1):
    from inspector.gui.pages.live.page import LivePage

    page = LivePage(registry=reg, store_path=tmp_path / "results.sqlite")
    qtbot.addWidget(page)
    page.resize(1200, 900)
    qtbot.waitUntil(lambda: page.source_panel.model.count() == models, timeout=10000)
    return page


def cell(page, column: int, row: int = 0) -> str:
    return page.line_panel.table.item(row, column).text()


def test_a_bad_address_shows_why_and_adds_nothing(qtbot, tmp_home, tmp_path):
    page = make_page(qtbot, ModelRegistry(), tmp_path, models=0)
    panel = page.line_panel
    for url, why in (("ftp://127.0.0.1/x", "unknown sink"), ("mqtt:///plant/line1", "names no host"),
                     ("http://127.0.0.1:99999/v", "port"), ("", "type a line output address")):
        panel.address.setText(url)
        qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
        assert panel.table.rowCount() == 0 and panel.sinks() == []
        assert why in panel.error.text() and not panel.error.isHidden()
    panel.address.setText("http://127.0.0.1:8080/verdicts")
    qtbot.keyClick(panel.address, Qt.Key.Key_Return)
    assert panel.sinks() == ["http://127.0.0.1:8080/verdicts"] and panel.error.isHidden() and panel.address.text() == ""
    assert not panel.add_sink("http://127.0.0.1:8080/verdicts")  # the same sink twice
    assert "already" in panel.error.text() and panel.table.rowCount() == 1
    assert not panel.edit_sink(0, "modbus+nothing://x")  # a bad edit leaves the row as it was
    assert panel.sinks() == ["http://127.0.0.1:8080/verdicts"]
    assert panel.edit_sink(0, "mqtt://user:secret@127.0.0.1/plant/line1")
    assert panel.sinks() == ["mqtt://user:secret@127.0.0.1/plant/line1"]
    assert "secret" not in cell(page, 0) and cell(page, 0) == "mqtt://127.0.0.1:1883/plant/line1"  # no password on screen
    panel.table.selectRow(0)
    qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    assert panel.sinks() == []
    page.shutdown()


def set_up_station(page, folder) -> None:
    panel = page.line_panel
    page.source_panel.source.setCurrentText(f"sim:{folder}")
    page.set_roi_text("2,3,40,30")
    panel.name.setText("line1-cells")
    panel.trigger.setCurrentIndex(panel.trigger.findData("line"))
    panel.fps.setValue(12.5)
    for url in ("http://127.0.0.1:8080/verdicts", "mqtt://127.0.0.1:1883/plant/line1", "digital://sim?pulse_ms=20"):
        assert panel.add_sink(url), panel.error.text()


def page_state(page) -> tuple:
    p = page.line_panel
    return (page.source_panel.source_text(), page.live_view.roi_edit.text(), p.sinks(), p.station_name(),
            p.trigger_mode(), p.rate(), page.source_panel.model_name())


def test_a_saved_station_opens_in_another_page_as_it_was(qtbot, registry, tiny_bundle, parts_dir, tmp_path):
    registry.add(fresh(tiny_bundle), "other")
    page = make_page(qtbot, registry, tmp_path, models=2)
    set_up_station(page, parts_dir)
    sources = page.source_panel
    sources.model.setCurrentIndex(sources.model.findData("other"))
    path = tmp_path / "stations" / "line1.toml"
    path.parent.mkdir()
    assert page.save_station(path) and "saved" in page.message_bar.text.text()
    station = Station.load(path)
    assert (station.name, station.source, station.model, station.fps, station.roi, station.trigger) == (
        "line1-cells", f"sim:{parts_dir}", "other", 12.5, [2, 3, 40, 30], "line")
    assert station.sinks == page.line_panel.sinks()

    other = make_page(qtbot, registry, tmp_path / "b", models=2)
    assert page_state(other) != page_state(page)
    assert other.open_station(path), other.message_bar.text.text()
    assert page_state(other) == page_state(page) == (
        f"sim:{parts_dir}", "2,3,40,30", ["http://127.0.0.1:8080/verdicts", "mqtt://127.0.0.1:1883/plant/line1",
                                         "digital://sim?pulse_ms=20"], "line1-cells", "line", 12.5, "other")
    assert other.live_view.view.roi == (2, 3, 40, 30)
    assert "line1-cells" in other.message_bar.text.text() and other.message_bar.level == "info"
    page.shutdown()
    other.shutdown()


@pytest.mark.parametrize("text, why", [
    ('name = "x"\nsink = ["http://127.0.0.1/v"]\n', "unknown key"),
    ('name = "x"\nsource = "0"\nsinks = ["http://127.0.0.1/v", "ftp://127.0.0.1/v"]\n', "unknown sink"),
    ('source = "0"\nsinks = ["http://127.0.0.1/v", "http://127.0.0.1:80/v"]\n', "already"),
    ('source = "0"\nroi = [1, 2]\n', "roi must be four"),
    ('source = "0"\nroi = [0, 0, 0, 5]\n', "width and height"),
    ('source = "0"\ntrigger = "sometimes"\n', "trigger must be"),
    ("source = \n", "not a valid TOML"),
    (None, "cannot read"),
])
def test_a_bad_station_file_leaves_the_page_as_it_was(qtbot, registry, parts_dir, tmp_path, text, why):
    page = make_page(qtbot, registry, tmp_path)
    set_up_station(page, parts_dir)
    before = page_state(page)
    path = tmp_path / "bad.toml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    assert not page.open_station(path)
    assert page_state(page) == before
    assert why in page.message_bar.text.text() and page.message_bar.level == "error"
    assert "\n" not in page.message_bar.text.text()
    page.shutdown()


def test_a_test_verdict_before_a_run_shows_each_sinks_answer(qtbot, tmp_home, tmp_path, receiver):
    page = make_page(qtbot, ModelRegistry(), tmp_path, models=0)
    panel = page.line_panel
    panel.name.setText("bench-7")
    assert panel.add_sink(receiver.url) and panel.add_sink("http://127.0.0.1:1/nobody")
    with qtbot.waitSignal(panel.testAnswered, timeout=15000) as answered:
        qtbot.mouseClick(panel.test_button, Qt.MouseButton.LeftButton)
        assert not panel.test_button.isEnabled()  # one test at a time
    assert answered.args[0][receiver.url] == "" and "not reached" in answered.args[0]["http://127.0.0.1:1/nobody"]
    assert cell(page, STATE, 0) == "test verdict delivered"
    assert cell(page, STATE, 1).startswith("test verdict failed") and "not reached" in cell(page, STATE, 1)
    assert panel.table.item(1, STATE).foreground().color() == NG_COLOR
    body = receiver.bodies[0]
    assert len(receiver.bodies) == 1 and body["test"] is True and body["station"] == "bench-7"
    assert panel.test_button.isEnabled()
    page.shutdown()


def test_start_passes_the_trigger_mode(qtbot, registry, parts_dir, tmp_path):
    """A station on line trigger needs a sink that takes triggers: the controller says so at Start."""
    page = make_page(qtbot, registry, tmp_path)
    page.source_panel.source.setCurrentText(f"sim:{parts_dir}")
    page.line_panel.trigger.setCurrentIndex(page.line_panel.trigger.findData("line"))
    page.start()
    qtbot.waitUntil(lambda: "triggered station needs a line output" in page.message_bar.text.text(), timeout=10000)
    assert not page.is_running() and page.source_panel.start_button.isEnabled()
    page.shutdown()


def test_a_run_delivers_to_a_webhook_that_goes_down_and_comes_back(qtbot, registry, parts_dir, tmp_path, receiver):
    page = make_page(qtbot, registry, tmp_path)
    panel = page.line_panel
    page.source_panel.source.setCurrentText(f"sim:{parts_dir}")
    panel.name.setText("line1-cells")
    panel.fps.setValue(20)
    assert panel.add_sink(receiver.url)
    with qtbot.waitSignal(page.started, timeout=15000):
        qtbot.mouseClick(page.source_panel.start_button, Qt.MouseButton.LeftButton)
    assert not panel.add_button.isEnabled() and not panel.name.isEnabled()  # the run's sinks are fixed
    qtbot.waitUntil(lambda: cell(page, STATE) == "up" and int(cell(page, DELIVERED)) >= 5 and cell(page, BACKLOG) == "0",
                    timeout=20000)
    assert cell(page, LATENCY).endswith(" ms") and receiver.bodies[0]["station"] == "line1-cells"
    assert receiver.bodies[0]["source"].startswith("simulated line")

    receiver.failing = True
    qtbot.waitUntil(lambda: cell(page, STATE).startswith("DOWN"), timeout=10000)
    assert "503" in cell(page, STATE) and panel.table.item(0, STATE).foreground().color() == NG_COLOR
    assert "is DOWN" in page.message_bar.text.text() and page.message_bar.level == "error"
    waiting = int(cell(page, BACKLOG))
    qtbot.waitUntil(lambda: int(cell(page, BACKLOG)) >= waiting + 3, timeout=10000)  # inspection goes on, verdicts wait
    assert panel.down() == [receiver.url]
    page.message_bar.hide()
    qtbot.wait(700)  # more refreshes of the same outage
    assert page.message_bar.isHidden(), "an outage is announced once"

    receiver.failing = False
    qtbot.waitUntil(lambda: cell(page, STATE) == "up" and cell(page, BACKLOG) == "0", timeout=20000)
    assert panel.table.item(0, STATE).foreground().color() != NG_COLOR and panel.down() == []
    assert "up again" in page.message_bar.text.text()
    with qtbot.waitSignal(page.stopped, timeout=15000):
        page.stop()
    assert cell(page, STATE) == "stopped" and panel.add_button.isEnabled()
    store = page.controller.existing_store()
    expected = [f"{store.store_id}:{r.id}" for r in store.query(newest_first=False)]
    assert len(expected) > 10 and in_order_once(receiver.ids()) == expected, "every verdict, in order, none lost"
    page.shutdown()
