"""An inline message strip at the top of the window: errors stay until closed, notes fade out."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QStyle, QToolButton, QWidget

from inspector.gui.widgets.decision import NG_COLOR


class MessageBar(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setAutoRaise(True)
        close.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_TitleBarCloseButton))
        close.setToolTip("Close (the message is also in the log)")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.icon)
        layout.addWidget(self.text, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self._timer = QTimer(self, singleShot=True, timeout=self.hide)
        self.level = ""
        self.hide()

    def show_message(self, text: str, level: str = "info") -> None:
        """level: info (hides after 8 s), warning or error (stay until closed)."""
        self.level = level
        icons = {
            "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
            "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
            "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
        }
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        self.icon.setPixmap(self.style().standardIcon(icons.get(level, icons["info"])).pixmap(size, size))
        self.text.setText(text)
        border = NG_COLOR.name() if level == "error" else "palette(highlight)" if level == "info" else "#c98a12"
        self.setStyleSheet(
            f"#messageBar {{ border: 1px solid {border}; border-radius: 6px; background: palette(alternate-base); }}"
        )
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.show()
        if level == "info":
            self._timer.start(8000)
        else:
            self._timer.stop()
