"""Current vs new: the retrained candidate measured against the version in use, for the operator
to promote, discard or leave for later."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.gui.widgets.decision import NG_COLOR, OK_COLOR
from inspector.engine.modelref import ref_text


class ComparisonDialog(QDialog):
    """Current vs new version on the same images; Promote / Discard / Decide later."""

    PROMOTE, DISCARD, LATER = 1, 2, 0

    def __init__(self, result, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result = result
        new, current = result.entry, result.parent
        self.setWindowTitle(f"Retrained: {ref_text(new.name, new.version)} vs {ref_text(current.name, current.version)}")
        rows = result.comparison.rows()
        table = QTableWidget(len(rows), 4)
        table.setHorizontalHeaderLabels(["", f"current (v{current.version})", f"new (v{new.version})", "better"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                item = QTableWidgetItem(value)
                if j == 3 and value in ("new", "current"):
                    item.setForeground(OK_COLOR if value == "new" else NG_COLOR)
                if j in (1, 2):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(i, j, item)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        table.resizeColumnsToContents()
        table.setMinimumWidth(620)
        self.table = table
        pool = result.entry.info.training.get("retrain", {}).get("pool", {})
        note = QLabel(
            f"v{new.version} was fine-tuned from v{current.version} on its original good images plus "
            f"{len(pool.get('good', []))} image(s) marked as false alarms, and calibrated on good images neither "
            "version trained on. Both are measured at their own threshold on the same held-out good images, the "
            "confirmed defects and synthetic defects painted on the held-out images. Inspection goes on with "
            f"v{current.version} until you promote."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox()
        self.promote_button = buttons.addButton(f"Promote v{new.version}", QDialogButtonBox.ButtonRole.AcceptRole)
        self.discard_button = buttons.addButton(f"Discard v{new.version}", QDialogButtonBox.ButtonRole.DestructiveRole)
        self.later_button = buttons.addButton("Decide later", QDialogButtonBox.ButtonRole.RejectRole)
        self.promote_button.clicked.connect(lambda: self.done(self.PROMOTE))
        self.discard_button.clicked.connect(lambda: self.done(self.DISCARD))
        self.later_button.clicked.connect(lambda: self.done(self.LATER))
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(table)
        layout.addWidget(buttons)
