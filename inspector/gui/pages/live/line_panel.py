"""Line I/O: where the verdicts go and how the line drives the station.

The station's name (in every verdict), its trigger mode (free-running, or one part per trigger
from the line), the rate of a simulated line or video, and its line outputs (sinks: MQTT, a
webhook, OPC UA, Modbus, digital outputs). An address is checked when it is added (``open_sink``,
not started), so a typo is one line here rather than a station that runs without its PLC output.
*Send test verdict* checks the wiring before a run. During a run each sink's state, delivered
count, backlog and latency come from the controller's ``line_status``; a sink that is down is red
here and said once per outage in the page's message strip: its verdicts wait in the outbox.

Also the station file (``engine.station``): read and checked whole before anything on the page
changes, so a bad file loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from inspector.engine.live import Roi, parse_roi
from inspector.engine.modelref import ModelRef, ModelRefError
from inspector.engine.sinks import SCHEMES, SinkStatus, open_sink
from inspector.engine.station import TRIGGERS, Station, StationError
from inspector.gui.formatting import human_duration
from inspector.gui.widgets.decision import NG_COLOR, OK_COLOR
from inspector.gui.workers import Job, run_job

REFRESH_S = 0.5  # each sink's figures cost an outbox query: read them at most this often, not every UI tick
TEST_TIMEOUT_S = 5.0  # a test verdict waits this long for each receiver's acknowledgement
TRIGGER_TEXTS = {"free": "free-running (every frame)", "line": "one part per line trigger"}
COLUMNS = ("Line output", "State", "Delivered", "Backlog", "Latency p50 / p95")
STATE, DELIVERED, BACKLOG, LATENCY = 1, 2, 3, 4
URL_ROLE = Qt.ItemDataRole.UserRole  # the address as typed (it may hold a password; the table shows the key)
STATION_FILTER = "Station files (*.toml);;All files (*)"
ERROR_STYLE = f"QLabel {{ color: {NG_COLOR.name()}; }}"


def check_sink(url: str, station: str = "station", taken: Iterable[str] = ()) -> str:
    """The key of the sink ``url`` names (opened, never started), or ValueError in one line: a
    bad address, a protocol this installation lacks, or a sink already in ``taken``."""
    url = url.strip()
    if not url:
        raise ValueError("type a line output address, e.g. " + ", ".join(f"{s}://…" for s in SCHEMES[:3]))
    try:
        key = open_sink(url, station or "station").key
    except ImportError as e:  # the protocol's library is not installed here
        raise ValueError(f"sink {url!r}: its protocol is not available in this installation ({e})") from None
    if key in set(taken):
        raise ValueError(f"{key} is a line output of this station already")
    return key


def read_station(path: str | Path) -> tuple[Station, Roi | None]:
    """The station in ``path`` and its ROI, every part checked (each sink too) before the page
    takes any of it; StationError in one line naming the file."""
    station = Station.load(path)
    try:
        roi = parse_roi(station.roi)
        keys: list[str] = []
        for url in station.sinks:
            keys.append(check_sink(url, station.name, keys))
    except ValueError as e:
        raise StationError(f"{path}: {e}") from None
    return station, roi


def choose_model(combo: QComboBox, ref: str) -> str:
    """Select the station's model in the page's list (registered models, exported folders); '' or a note saying
    why what the file names is not exactly what will run."""
    if not ref:
        return ""
    if (index := combo.findData(ref)) >= 0:  # a registered name, or an exported folder the page lists
        combo.setCurrentIndex(index)
        return ""
    try:
        wanted = ModelRef.parse(ref)
    except ModelRefError:
        return f" Its model {ref} is not a registered name: choose one from the list."
    index = combo.findData(wanted.name)
    if index < 0:
        return f" Its model {wanted.name} is not in the list: choose one."
    combo.setCurrentIndex(index)
    if wanted.version is not None:
        return f" The Live page runs the version in use of {wanted.name}, not v{wanted.version} as the file pins."
    return ""


class LinePanel(QGroupBox):
    """The station's name, trigger, rate and sinks; the page reads them at Start and hands the
    run's sink figures to ``refresh``. ``send_test(urls, station, timeout)`` is the controller's
    ``send_test_verdict`` (run in a background job: receivers may take seconds to answer)."""

    openRequested = Signal(str)  # a station file to open (chosen in the file dialog)
    saveRequested = Signal(str)  # where to save the station
    testAnswered = Signal(dict)  # sink key -> '' (delivered, or queued during a run) or why not

    def __init__(self, send_test: Callable[[list[str], str, float], dict[str, str]], parent: QWidget | None = None) -> None:
        super().__init__("Station and line I/O", parent)
        self._send_test = send_test
        self.test_job: Job | None = None
        self.running = False
        self._outages: dict[str, float] = {}  # key -> down_since of the outage already announced
        self._refreshed = 0.0
        self.name = QLineEdit()
        self.name.setPlaceholderText("station")
        self.name.setToolTip("The station's name in every verdict message")
        self.trigger = QComboBox()
        for value in TRIGGERS:
            self.trigger.addItem(TRIGGER_TEXTS.get(value, value), value)
        self.trigger.setToolTip("Free-running: every frame is inspected. Line trigger: one part per trigger from a "
                                "line output that takes triggers (OPC UA, Modbus, MQTT <topic>/trigger)")
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.0, 1000.0)
        self.fps.setDecimals(1)
        self.fps.setSpecialValueText("the source's own")
        self.fps.setSuffix(" /s")
        self.fps.setToolTip("Parts per second of a simulated line (sim:FOLDER), frames per second of a video file")
        self.address = QLineEdit()
        self.address.setPlaceholderText("mqtt://HOST:1883/TOPIC, http://HOST/PATH, opcua://HOST:4840, modbus://HOST:502, digital://sim")
        self.address.returnPressed.connect(self._add_typed)
        self.address.textEdited.connect(lambda _: self.show_error(""))
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(self._add_typed)
        self.edit_button = QPushButton("Edit…")
        self.edit_button.clicked.connect(self._edit_chosen)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(lambda: self.remove_sink(self.table.currentRow()))
        self.test_button = QPushButton("Send test verdict")
        self.test_button.setToolTip("An NG verdict marked as a test to every line output, to check the wiring")
        self.test_button.clicked.connect(self.send_test)
        self.open_button = QPushButton("Open station…")
        self.open_button.clicked.connect(self._open_clicked)
        self.save_button = QPushButton("Save station…")
        self.save_button.clicked.connect(self._save_clicked)
        self.error = QLabel("")
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        for column in range(len(COLUMNS)):
            stretch = column in (0, STATE)
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch if stretch else QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMaximumHeight(130)
        self.table.itemDoubleClicked.connect(lambda _: self._edit_chosen())
        self.table.itemSelectionChanged.connect(self._update_buttons)

        grid = QGridLayout(self)
        grid.addWidget(QLabel("Station"), 0, 0)
        grid.addWidget(self.name, 0, 1)
        grid.addWidget(QLabel("Trigger"), 0, 2)
        grid.addWidget(self.trigger, 0, 3)
        grid.addWidget(QLabel("Rate"), 0, 4)
        grid.addWidget(self.fps, 0, 5)
        add = QHBoxLayout()
        add.addWidget(self.address, 1)
        for button in (self.add_button, self.edit_button, self.remove_button):
            add.addWidget(button)
        grid.addLayout(add, 1, 0, 1, 6)
        grid.addWidget(self.error, 2, 0, 1, 6)
        grid.addWidget(self.table, 3, 0, 1, 6)
        actions = QHBoxLayout()
        actions.addWidget(self.test_button)
        actions.addStretch(1)
        actions.addWidget(self.open_button)
        actions.addWidget(self.save_button)
        grid.addLayout(actions, 4, 0, 1, 6)
        grid.setColumnStretch(1, 1)
        self._update_buttons()

    # --- what the page reads -----------------------------------------------------------------------
    def sinks(self) -> list[str]:
        """The addresses, as typed, in order."""
        return [self.table.item(row, 0).data(URL_ROLE) for row in range(self.table.rowCount())]

    def keys(self) -> list[str]:
        return [self.table.item(row, 0).text() for row in range(self.table.rowCount())]

    def station_name(self) -> str:
        return self.name.text().strip() or "station"

    def trigger_mode(self) -> str:
        return self.trigger.currentData()

    def triggered(self) -> bool:
        return self.trigger_mode() == "line"

    def rate(self) -> float | None:
        return self.fps.value() or None

    def station(self, source: str, model: str, roi: Roi | None) -> Station:
        """This panel's part of a station file, with the page's source, model and ROI."""
        return Station(name=self.station_name(), source=source, model=model, fps=self.rate(),
                       roi=list(roi) if roi else None, trigger=self.trigger_mode(), sinks=self.sinks())

    def set_station(self, station: Station) -> None:
        """Show a station already checked (``read_station``)."""
        self.name.setText(station.name)
        self.trigger.setCurrentIndex(max(0, self.trigger.findData(station.trigger)))
        self.fps.setValue(station.fps or 0.0)
        self.table.setRowCount(0)
        for url in station.sinks:
            self._append(url, check_sink(url, station.name))
        self.show_error("")

    # --- the list of sinks ---------------------------------------------------------------------------
    def add_sink(self, url: str) -> bool:
        """Add an address; False (and the reason under the field, nothing added) when it is bad."""
        try:
            key = check_sink(url, self.station_name(), self.keys())
        except ValueError as e:
            self.show_error(str(e))
            return False
        self._append(url.strip(), key)
        self.show_error("")
        return True

    def edit_sink(self, row: int, url: str) -> bool:
        """Replace the address in ``row``; a bad one leaves the row as it was (and says why)."""
        if not 0 <= row < self.table.rowCount():
            return False
        try:
            key = check_sink(url, self.station_name(), [k for i, k in enumerate(self.keys()) if i != row])
        except ValueError as e:
            self.show_error(str(e))
            return False
        self._set_row(row, url.strip(), key)
        self.show_error("")
        return True

    def remove_sink(self, row: int) -> None:
        if 0 <= row < self.table.rowCount() and not self.running:
            self.table.removeRow(row)
            self._update_buttons()

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def _append(self, url: str, key: str) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self._set_row(row, url, key)
        self._update_buttons()

    def _set_row(self, row: int, url: str, key: str) -> None:
        item = QTableWidgetItem(key)
        item.setData(URL_ROLE, url)
        item.setToolTip(key)
        self.table.setItem(row, 0, item)
        for column in (STATE, DELIVERED, BACKLOG, LATENCY):
            self.table.setItem(row, column, QTableWidgetItem("–" if column != STATE else ""))

    def _add_typed(self) -> None:
        if self.add_sink(self.address.text()):
            self.address.clear()

    def _edit_chosen(self) -> None:
        row = self.table.currentRow()
        if self.running or row < 0:
            return
        url, ok = QInputDialog.getText(self, "Edit line output", "Address", QLineEdit.EchoMode.Normal, self.sinks()[row])
        if ok:
            self.edit_sink(row, url)

    # --- runs -----------------------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        """The run's sinks are fixed at Start: editing waits until it stops."""
        if running and not self.running:
            self._outages.clear()
            self._refreshed = 0.0
            for row in range(self.table.rowCount()):
                self._cell(row, STATE, "starting")
        elif not running and self.running:
            for row in range(self.table.rowCount()):
                self._cell(row, STATE, "stopped")
        self.running = running
        for widget in (self.name, self.trigger, self.fps, self.address, self.open_button):
            widget.setEnabled(not running)
        self._update_buttons()

    def refresh(self, read: Callable[[], Sequence[SinkStatus]], force: bool = False) -> list[tuple[str, str]]:
        """Called by the page's UI timer: show ``read()`` at most every ``REFRESH_S``; the
        (level, text) messages for the page's strip (an outage once, its end once)."""
        now = time.monotonic()
        if not force and now - self._refreshed < REFRESH_S:
            return []
        self._refreshed = now
        return self.show_status(read())

    def show_status(self, statuses: Sequence[SinkStatus]) -> list[tuple[str, str]]:
        rows = {key: row for row, key in enumerate(self.keys())}
        messages = []
        for s in statuses:
            row = rows.get(s.key)
            if row is None:
                continue
            if s.down_since is not None:
                self._cell(row, STATE, f"DOWN for {human_duration(time.time() - s.down_since)}: {s.last_error}", NG_COLOR)
                if self._outages.get(s.key) != s.down_since:
                    self._outages[s.key] = s.down_since
                    messages.append(("error", f"Line output {s.key} is DOWN: {s.last_error}. Its verdicts wait in the "
                                              "outbox and go out, in order, when it is back."))
            else:
                self._cell(row, STATE, "up" if s.connected else "waiting for the first verdict", OK_COLOR if s.connected else None)
                if self._outages.pop(s.key, None) is not None:
                    messages.append(("info", f"Line output {s.key} is up again."))
            waiting = s.backlog + s.unstored_waiting
            self._cell(row, DELIVERED, f"{s.delivered}")
            self._cell(row, BACKLOG, f"{waiting}", NG_COLOR if s.down_since is not None and waiting else None)
            self._cell(row, LATENCY, f"{s.latency_p50_ms:.0f} / {s.latency_p95_ms:.0f} ms" if s.delivered else "–")
        return messages

    def down(self) -> list[str]:
        """The sinks whose outage is on screen now."""
        return list(self._outages)

    def _cell(self, row: int, column: int, text: str, color=None) -> None:
        item = self.table.item(row, column)
        item.setText(text)
        item.setToolTip(text)
        item.setForeground(QBrush(color) if color is not None else QBrush())

    # --- the test verdict -------------------------------------------------------------------------------
    def send_test(self) -> Job | None:
        """A test verdict to every sink in a background job; each sink's answer in its row."""
        urls = self.sinks()
        if not urls:
            self.show_error("Add a line output first.")
            return None
        if self.test_job is not None and self.test_job.running:
            return None
        name = self.station_name()
        self.test_job = run_job(f"Sending a test verdict to {len(urls)} line output(s)",
                                lambda report, cancel: self._send_test(urls, name, TEST_TIMEOUT_S), parent=self)
        self.test_job.succeeded.connect(self.show_answers)
        self.test_job.failed.connect(lambda m: self.show_error(f"The test verdict was not sent: {m}"))
        self.test_job.finished.connect(self._update_buttons)
        for row in range(self.table.rowCount()):
            self._cell(row, STATE, "sending a test verdict…")
        self._update_buttons()
        return self.test_job

    def show_answers(self, answers: dict[str, str]) -> None:
        rows = {key: row for row, key in enumerate(self.keys())}
        for key, why in answers.items():
            row = rows.get(key)
            if row is None:
                continue
            if why:
                self._cell(row, STATE, f"test verdict failed: {why}", NG_COLOR)
            elif self.running:  # it went into the run's outbox order: the next refresh shows how it went
                self._cell(row, STATE, "test verdict queued behind the run's verdicts")
            else:
                self._cell(row, STATE, "test verdict delivered", OK_COLOR)
        self.testAnswered.emit(answers)

    # --- buttons -------------------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        chosen = self.table.currentRow() >= 0
        self.add_button.setEnabled(not self.running)
        self.edit_button.setEnabled(chosen and not self.running)
        self.remove_button.setEnabled(chosen and not self.running)
        self.test_button.setEnabled(self.table.rowCount() > 0 and not (self.test_job is not None and self.test_job.running))

    def _open_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open station file", "", STATION_FILTER)
        if path:
            self.openRequested.emit(path)

    def _save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save station file", f"{self.station_name()}.toml", STATION_FILTER)
        if path:
            self.saveRequested.emit(path)
