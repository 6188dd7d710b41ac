"""The advisor's answer: each candidate's figures side by side, the recommendation and its reason,
and what synthetic defects can and cannot tell."""

from __future__ import annotations

import math

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

COLUMNS = ("Method", "Size", "Epochs", "AUROC real", "AUROC synthetic", "Pixel AUROC", "False alarms at 90 %", "Train s", "ms / image")


def _cell(value: float, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


class AdviceDialog(QDialog):
    """Accepted (``Use …``) means: put the recommended method on the Train form."""

    def __init__(self, advice, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.advice = advice
        self.setWindowTitle("Which method for these parts?")
        summary = QLabel(
            f"{advice.n_train} good images trained each candidate; compared on {advice.n_holdout_good} held-out good images, "
            f"{advice.n_synthetic} synthetic defects painted on them and {advice.n_labelled} labelled defects."
        )
        summary.setWordWrap(True)
        self.table = QTableWidget(len(advice.results), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        for row, r in enumerate(advice.results):
            values = [r.method, str(r.image_size), str(r.epochs), _cell(r.labelled_auroc), _cell(r.synthetic_auroc),
                      _cell(r.pixel_auroc), _cell(r.false_alarm_at_90), _cell(r.train_s, 1), _cell(r.ms_per_image, 1)]
            if r.error:
                values[3:] = [f"could not be compared: {r.error}"] + [""] * (len(COLUMNS) - 4)
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                if r.method == advice.recommended:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
        self.reason = QLabel(("<b>Recommended:</b> " if advice.recommended else "<b>No recommendation:</b> ") + advice.reason)
        self.reason.setWordWrap(True)
        caveat = QLabel(advice.caveat)
        caveat.setWordWrap(True)
        caveat.setObjectName("hint")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        if advice.recommended:
            self.use_button = buttons.addButton(f"Use {advice.recommended}", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (summary, self.table, self.reason, caveat, buttons):
            layout.addWidget(widget)
        self.resize(900, 360)
