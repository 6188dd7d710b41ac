"""A 2 x 2 confusion matrix: actual good/defect against predicted OK/NG, shaded by row share."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from inspector.gui.widgets.decision import NG_COLOR, OK_COLOR


class ConfusionMatrix(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.counts = {"tn": 0, "fp": 0, "fn": 0, "tp": 0}
        self.row_names = ("good", "defect")
        self.setMinimumSize(260, 170)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QSize:
        return QSize(320, 200)

    def set_counts(self, counts: dict[str, int], row_names: tuple[str, str] = ("good", "defect")) -> None:
        self.counts = {k: int(counts.get(k, 0)) for k in ("tn", "fp", "fn", "tp")}
        self.row_names = row_names
        c = self.counts
        self.setToolTip(
            f"{row_names[0]}: {c['tn']} passed OK, {c['fp']} false alarms (NG)\n"
            f"{row_names[1]}: {c['fn']} missed (OK), {c['tp']} caught (NG)"
        )
        self.setAccessibleDescription(self.toolTip())
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text = pal.color(QPalette.ColorRole.Text)
        head_w, head_h = 78.0, 26.0
        w = (self.width() - head_w - 4) / 2
        h = (self.height() - head_h - 4) / 2
        bold = QFont(self.font())
        bold.setBold(True)
        p.setFont(bold)
        p.setPen(text)
        for j, name in enumerate(("predicted OK", "predicted NG")):
            p.drawText(QRectF(head_w + j * w, 0, w, head_h), Qt.AlignmentFlag.AlignCenter, name)
        c = self.counts
        rows = ((c["tn"], c["fp"]), (c["fn"], c["tp"]))
        for i, (name, values) in enumerate(zip(self.row_names, rows)):
            y = head_h + i * h
            p.setFont(bold)
            p.setPen(text)
            p.drawText(QRectF(0, y, head_w - 6, h), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, name)
            total = max(sum(values), 1)
            for j, value in enumerate(values):
                correct = i == j
                share = value / total
                colour = QColor(OK_COLOR if correct else NG_COLOR)
                colour.setAlpha(int(25 + 200 * share))
                cell = QRectF(head_w + j * w + 2, y + 2, w - 4, h - 4)
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(colour)
                p.drawRoundedRect(cell, 6, 6)
                strong = share > 0.55
                p.setPen(QColor("white") if strong else text)
                big = QFont(self.font())
                big.setPointSizeF(self.font().pointSizeF() * 1.7)
                big.setBold(True)
                p.setFont(big)
                p.drawText(cell.adjusted(0, 0, 0, -h * 0.22), Qt.AlignmentFlag.AlignCenter, str(value))
                p.setFont(self.font())
                label = ("passed" if correct else "false alarms") if i == 0 else ("caught" if correct else "missed")
                p.drawText(cell.adjusted(0, h * 0.42, 0, 0), Qt.AlignmentFlag.AlignCenter, f"{label} · {100 * share:.1f}%")
