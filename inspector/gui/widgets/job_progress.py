"""A progress bar with a Cancel button for one background job, shown only while it runs."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QToolButton, QWidget


class JobProgress(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Cancel (Esc)")
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.cancel_button)
        self.job = None
        self.hide()

    def watch(self, job, total: int = 0) -> None:
        """Follow ``job``'s Progress events (``done``/``total``/``message``); other events are ignored."""
        self.job = job
        self.bar.setRange(0, total)  # 0: busy until the first event says how much there is
        self.bar.setValue(0)
        self.bar.setFormat("%v of %m")
        job.progress.connect(self._on_progress)
        job.finished.connect(self._on_finished)
        self.show()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _on_progress(self, event) -> None:
        if self.sender() is not self.job or not hasattr(event, "done"):
            return
        self.bar.setRange(0, max(event.total, 1))
        self.bar.setValue(event.done)
        if getattr(event, "message", ""):
            self.bar.setFormat(f"{event.message}: %v of %m")

    def _on_finished(self) -> None:
        if self.sender() is self.job:
            self.job = None
            self.hide()
