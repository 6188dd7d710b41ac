"""The History page: past inspection results from the results store, filtered by time, decision,
model and feedback; the saved image of a result with its stored defect regions outlined (as on
the Results page) and the rule that decided; operator feedback afterwards; CSV export."""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QDateTime, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.gui.widgets.decision import decision_color
from inspector.gui.widgets.image_view import TitledImage
from inspector.engine.modelref import ModelRef

log = logging.getLogger(__name__)

COLUMNS = ("Time", "Id", "Result", "Score", "Threshold", "Model", "Source", "Frame", "Feedback")
FEEDBACK_TEXT = {"false_alarm": "good — false alarm", "confirmed": "defect — confirmed", None: ""}
RowRole = Qt.ItemDataRole.UserRole + 1


class HistoryPage(QWidget):
    """A history browser over one ``ResultsStore``: given, or from ``open_store`` (called each
    time the page is shown until it returns one: the database appears with the first live run)."""

    feedbackGiven = Signal(int, str)  # row id, feedback
    message = Signal(str, str)  # text, level (info | warning | error)

    def __init__(self, store=None, open_store: Callable[[], object] | None = None, limit: int = 2000,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.open_store = open_store
        self.limit = limit
        self.rows: list = []

        now = QDateTime.currentDateTime()
        self.use_since = QCheckBox("From")
        self.since = QDateTimeEdit(now.addDays(-1))
        self.use_until = QCheckBox("to")
        self.until = QDateTimeEdit(now)
        for edit in (self.since, self.until):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.decision = QComboBox()
        self.decision.addItems(["OK and NG", "NG only", "OK only"])
        self.model = QComboBox()
        self.model.setMinimumContentsLength(14)
        self.feedback = QComboBox()
        for text, value in (("any feedback", None), ("with feedback", "any"), ("no feedback", "none"),
                            ("false alarms", "false_alarm"), ("confirmed defects", "confirmed")):
            self.feedback.addItem(text, value)
        self.refresh_button = QPushButton("Refresh")
        self.export_button = QPushButton("Export CSV…")
        self.refresh_button.clicked.connect(self.refresh)
        self.export_button.clicked.connect(self._export_clicked)
        for w in (self.decision, self.model, self.feedback):
            w.currentIndexChanged.connect(self.refresh)
        for box in (self.use_since, self.use_until):
            box.toggled.connect(self.refresh)
        self.since.dateTimeChanged.connect(lambda _: self.use_since.isChecked() and self.refresh())
        self.until.dateTimeChanged.connect(lambda _: self.use_until.isChecked() and self.refresh())

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._show_selected)
        self.summary = QLabel()
        self.summary.setObjectName("hint")

        self.preview = TitledImage("Saved image", "NG frames (and sampled OK frames) are kept as images")
        self.preview_text = QLabel()
        self.preview_text.setWordWrap(True)
        self.show_regions = QCheckBox("Regions")
        self.show_regions.setChecked(True)
        self.show_regions.setToolTip("Outline the defect regions stored with the result")
        self.show_regions.toggled.connect(self._draw_regions)
        self.false_alarm_button = QPushButton("Good — false alarm")
        self.confirmed_button = QPushButton("Defect — confirmed")
        self.false_alarm_button.clicked.connect(lambda: self._feedback("false_alarm"))
        self.confirmed_button.clicked.connect(lambda: self._feedback("confirmed"))

        filters = QHBoxLayout()
        for w in (self.use_since, self.since, self.use_until, self.until, QLabel("Result"), self.decision,
                  QLabel("Model"), self.model, self.feedback):
            filters.addWidget(w)
        filters.addStretch(1)
        filters.addWidget(self.refresh_button)
        filters.addWidget(self.export_button)
        side = QWidget()
        sl = QVBoxLayout(side)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(self.preview, 1)
        sl.addWidget(self.show_regions)
        sl.addWidget(self.preview_text)
        buttons = QHBoxLayout()
        buttons.addWidget(self.false_alarm_button)
        buttons.addWidget(self.confirmed_button)
        sl.addLayout(buttons)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.table, 1)
        ll.addWidget(self.summary)
        splitter = QSplitter()
        splitter.setObjectName("historySplitter")
        splitter.addWidget(left)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(splitter, 1)
        self._update_buttons()

    # --- data -----------------------------------------------------------------------------------
    def set_store(self, store) -> None:
        self.store = store
        self.refresh()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.reload()

    def reload(self) -> None:
        """Open the database if there is one by now, and list what it holds."""
        try:
            if self.store is None and self.open_store is not None:
                self.store = self.open_store()
            self.refresh()
        except Exception as e:  # noqa: BLE001
            self.message.emit(f"Could not open the results database: {e}", "error")

    def filters(self) -> dict:
        decision = {1: "NG", 2: "OK"}.get(self.decision.currentIndex())
        model = self.model.currentData()
        return {
            "since": self.since.dateTime().toPython() if self.use_since.isChecked() else None,
            "until": self.until.dateTime().toPython() if self.use_until.isChecked() else None,
            "decision": decision,
            "model": model,
            "feedback": self.feedback.currentData(),
        }

    def refresh(self) -> None:
        if self.store is None:
            self.summary.setText("No results database yet: start live inspection first.")
            return
        self._fill_models()
        filters = self.filters()
        try:
            self.rows = self.store.query(limit=self.limit, **filters)
            counts = self.store.count(**filters)
        except Exception as e:  # noqa: BLE001 — a bad filter or a locked file is a message, not a crash
            self.message.emit(f"Could not read the results: {e}", "error")
            return
        selected = self.selected_row()
        self.table.setRowCount(len(self.rows))
        for i, r in enumerate(self.rows):
            values = (
                r.when.strftime("%Y-%m-%d %H:%M:%S"), str(r.id), r.decision, f"{r.score:.5g}", f"{r.threshold:.5g}",
                r.model_ref, r.source, r.frame_name or str(r.frame_id), FEEDBACK_TEXT.get(r.feedback, r.feedback or ""),
            )
            for j, value in enumerate(values):
                item = QTableWidgetItem(value)
                if j == 0:
                    item.setData(RowRole, r.id)
                if j == 2 and decision_color(r.decision) is not None:
                    item.setForeground(decision_color(r.decision))
                if j in (1, 3, 4):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        rate = 100 * counts["NG"] / counts["total"] if counts["total"] else 0.0
        shown = f" (newest {len(self.rows)} shown)" if counts["total"] > len(self.rows) else ""
        self.summary.setText(f"{counts['total']} results, {counts['NG']} NG ({rate:.1f} %){shown} · {self.store.path}")
        if selected is not None:
            self.select_id(selected.id)
        self._update_buttons()

    def _fill_models(self) -> None:
        current = self.model.currentData()
        models = self.store.models()
        names = sorted({ModelRef.parse(m).name for m in models})
        wanted = [(None, "all models")] + [(n, f"{n} (all versions)") for n in names] + [(m, m) for m in models]
        if [self.model.itemData(i) for i in range(self.model.count())] == [w[0] for w in wanted]:
            return
        self.model.blockSignals(True)
        self.model.clear()
        for value, text in wanted:
            self.model.addItem(text, value)
        index = self.model.findData(current)
        self.model.setCurrentIndex(max(index, 0))
        self.model.blockSignals(False)

    def selected_row(self):
        items = self.table.selectedItems()
        if not items:
            return None
        row_id = self.table.item(items[0].row(), 0).data(RowRole)
        return next((r for r in self.rows if r.id == row_id), None)

    def select_id(self, row_id: int) -> None:
        for i in range(self.table.rowCount()):
            if self.table.item(i, 0).data(RowRole) == row_id:
                self.table.selectRow(i)
                return

    def _show_selected(self) -> None:
        row = self.selected_row()
        self._update_buttons()
        if row is None:
            self.preview.set_image(None)
            self.preview.view.set_outlines([])
            self.preview_text.setText("")
            return
        image = None
        if row.image:
            try:
                image = self.store.load_image(row)
            except Exception as e:  # noqa: BLE001
                self.preview_text.setText(f"the saved image cannot be read: {e}")
        self.preview.set_image(image)
        self._draw_regions()
        verdict = FEEDBACK_TEXT.get(row.feedback, "")
        self.preview_text.setText(
            f"<b>{row.decision}</b> score {row.score:.5g} vs threshold {row.threshold:.5g} · {row.model_ref} · "
            f"{row.source} frame {row.frame_name or row.frame_id} · {row.when:%Y-%m-%d %H:%M:%S}"
            + (f" · <i>{verdict}</i>" if verdict else "")
            + (f"<br>decided by: {html.escape(row.rule)}" if row.rule else "")
            + (f"<br>{_regions_text(row)}" if row.regions is not None else "")
            + (f"<br><b>not scored</b> (recorded as NG): {html.escape(row.error)}" if row.error else "")
            + ("" if row.image else "<br>(no image kept for this OK frame)")
        )

    def _draw_regions(self) -> None:
        """The selected result's stored regions on its saved image (both the inspected region's
        pixels: the store keeps the ROI crop the regions were found on)."""
        row = self.selected_row()
        show = row is not None and self.preview.view.has_image() and self.show_regions.isChecked()
        self.preview.view.set_outlines([r.bbox for r in _stored_regions(row)] if show else [])

    def _update_buttons(self) -> None:
        row = self.selected_row()
        usable = row is not None and row.image is not None
        self.false_alarm_button.setEnabled(usable)
        self.confirmed_button.setEnabled(usable)
        self.export_button.setEnabled(self.store is not None)

    def _feedback(self, feedback: str) -> None:
        row = self.selected_row()
        if row is None:
            return
        from inspector.engine.retrain import give_feedback

        try:
            give_feedback(self.store, row.id, feedback)
        except Exception as e:  # noqa: BLE001
            self.message.emit(f"Could not record the feedback: {e}", "error")
            return
        self.feedbackGiven.emit(row.id, feedback)
        self.message.emit(f"Result {row.id} marked {FEEDBACK_TEXT[feedback]}", "info")
        self.refresh()

    # --- export ------------------------------------------------------------------------------------
    def export_csv(self, path: str | Path) -> int:
        """Every result matching the filters (not only the rows listed) as CSV."""
        n = self.store.export_csv(path, **self.filters())
        self.message.emit(f"{n} results exported to {path}", "info")
        return n

    def _export_clicked(self) -> None:
        default = str(Path.home() / f"inspections-{dt.date.today():%Y%m%d}.csv")
        path, _ = QFileDialog.getSaveFileName(self, "Export results as CSV", default, "CSV files (*.csv)")
        if path:
            try:
                self.export_csv(path)
            except Exception as e:  # noqa: BLE001
                self.message.emit(f"Could not export: {e}", "error")


def _regions_text(row) -> str:
    """The stored regions in a few words: how many, and the largest in the unit the rules used."""
    regions = _stored_regions(row)
    if not regions:
        return "no defect region"
    unit = "mm²" if regions[0].area_mm2 is not None else "px"
    return f"{len(regions)} defect region(s), largest {regions[0].area:.4g} {unit}"


def _stored_regions(row) -> list:
    """``row.region_list()``; a row whose regions cannot be read (edited by hand) shows none."""
    try:
        return row.region_list()
    except (KeyError, TypeError, ValueError) as e:
        log.warning("result %s: stored regions cannot be read: %s", row.id, e)
        return []
