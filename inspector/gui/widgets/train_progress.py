"""The right half of the Train page: what a running training shows (status and ETA, progress,
loss curves, sample reconstructions) and, once it is done, the summary and what to do next."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QSplitter, QVBoxLayout, QWidget

from inspector.gui.formatting import human_duration
from inspector.gui.widgets.image_view import TitledImage
from inspector.gui.widgets.plots import LossPlot


def sample_strip(originals: np.ndarray, reconstructions: np.ndarray, gap: int = 2) -> np.ndarray:
    """Originals in the top row, their reconstructions below, with thin gaps."""
    def row(images: np.ndarray) -> np.ndarray:
        tiles = []
        for im in images:
            tiles.append(im)
            tiles.append(np.zeros((im.shape[0], gap) + im.shape[2:], np.uint8))
        return np.concatenate(tiles[:-1], axis=1)

    top, bottom = row(originals), row(reconstructions)
    return np.concatenate([top, np.zeros((gap,) + top.shape[1:], np.uint8), bottom], axis=0)


class TrainProgressView(QWidget):
    """Shows the trainer's events; the page decides when a run starts and ends."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._plot_dirty = False
        self.status = QLabel("Not training.")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setFormat("%p %")
        self.loss_plot = LossPlot()
        self.samples = TitledImage("Sample reconstructions", "Held-out good images (top) and the model's reconstructions (bottom) appear after each epoch.")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.inspect_button = QPushButton("Inspect images with it")
        self.evaluate_button = QPushButton("Evaluate it")
        after = QHBoxLayout()
        after.addWidget(self.summary, 1)
        after.addWidget(self.inspect_button)
        after.addWidget(self.evaluate_button)
        self.inspect_button.hide()
        self.evaluate_button.hide()

        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.samples)
        plots.setStretchFactor(0, 3)
        plots.setStretchFactor(1, 2)
        layout.addWidget(plots, 1)
        layout.addLayout(after)

    def begin(self, n_images: int) -> None:
        self.loss_plot.clear_losses()
        self.samples.set_image(None)
        self.summary.setText("")
        self.inspect_button.hide()
        self.evaluate_button.hide()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.status.setText(f"Reading {n_images} training images…")

    def percent(self) -> int | None:
        """How far the running epoch is, or None while the end is unknown (calibration)."""
        maximum = self.progress.maximum()
        return 100 * self.progress.value() // maximum if maximum > 0 else None

    def show_progress(self, event) -> None:
        """A ``TrainProgress`` event: the step, the speed, the ETA and the losses."""
        if event.phase == "train":
            self.progress.setRange(0, max(event.steps, 1))
            self.progress.setValue(event.step)
            self.status.setText(
                f"Epoch {event.epoch} of {event.epochs} · step {event.step} of {event.steps} · "
                f"{event.images_per_s:.0f} images/s · about {human_duration(event.eta_s)} left"
            )
            self.loss_plot.add(event.step, event.losses)
            self._plot_dirty = True
        elif event.phase == "calibrate":
            self.progress.setRange(0, 0)
            self.status.setText("Calibrating the threshold on held-out good images and synthetic defects…")

    def show_samples(self, event) -> None:
        """A ``SampleReconstructions`` event."""
        self.samples.title.setText(f"Sample reconstructions after epoch {event.epoch} (top: held-out good images, bottom: reconstructions)")
        self.samples.set_image(sample_strip(event.originals, event.reconstructions))

    def redraw(self) -> None:
        """Redraw the loss plot if it changed (called by a timer: a redraw per step would stall the UI)."""
        if self._plot_dirty:
            self._plot_dirty = False
            self.loss_plot.redraw()

    def cancelling(self) -> None:
        self.status.setText("Cancelling after the current step…")

    def succeeded(self, info) -> None:
        """The model's summary (``ModelInfo``) and the buttons to use it."""
        cal = info.metrics.get("calibration", {})
        t = info.threshold
        lines = [f"Saved <b>{info.ref}</b> · threshold {t.value:.4g} ({t.method})"]
        if cal:
            lines.append(
                f"held-out good flagged: {100 * cal.get('holdout_false_alarm_rate', float('nan')):.1f}% · "
                f"synthetic defects caught: {100 * cal.get('synthetic_detection_rate', float('nan')):.1f}% · "
                f"synthetic AUROC {cal.get('synthetic_image_auroc', float('nan')):.3f}"
            )
        self.summary.setText("<br>".join(lines))
        self.status.setText(f"Finished in {human_duration(info.training.get('duration_s', 0))}.")
        self._stopped(1)
        self.inspect_button.show()
        self.evaluate_button.show()

    def cancelled(self) -> None:
        self._stopped(0)
        self.status.setText(
            "Training cancelled. The last finished epoch is kept as a checkpoint: start again with the same settings to resume."
        )

    def failed(self, message: str) -> None:
        self._stopped(0)
        self.status.setText(f"Training failed: {message}")

    def _stopped(self, value: int) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(value)
