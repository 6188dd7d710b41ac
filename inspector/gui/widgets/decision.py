"""The OK/NG colours (the only fixed colours of the app), the big decision badge and the score
line beside it: every view that shows a verdict shows it with these (the rule: engine.decision)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QWidget

from inspector.engine.decision import NG, OK, is_ng

OK_COLOR = QColor("#2e9d4f")
NG_COLOR = QColor("#d64545")


def decision_color(decision: str) -> QColor | None:
    return {OK: OK_COLOR, NG: NG_COLOR}.get(decision)


def score_text(score: float, threshold: float, decision: str) -> str:
    """The verdict in words beside the badge: the score, above the threshold or not (a model's
    region rules may decide otherwise: the badge shows ``decision``, this line the score)."""
    relation = "above" if is_ng(score, threshold) else "not above"
    return f"<span style='font-size:14pt'><b>score {score:.5g}</b></span> &nbsp; {relation} the threshold {threshold:.5g}"


class DecisionBadge(QLabel):
    """A rounded OK / NG label in green / red; neutral while there is no decision."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumWidth(72)
        font = self.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.setFont(font)
        self.set_decision("")

    def set_decision(self, decision: str) -> None:
        self.decision = decision
        color = decision_color(decision)
        self.setText(decision or "–")
        if color is None:
            self.setStyleSheet("QLabel { border: 1px solid palette(mid); border-radius: 6px; padding: 4px 12px; color: palette(placeholder-text); }")
        else:
            self.setStyleSheet(f"QLabel {{ background: {color.name()}; color: white; border-radius: 6px; padding: 4px 12px; }}")
        self.setAccessibleName(f"decision {decision or 'none'}")
