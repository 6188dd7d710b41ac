"""One scored image: original | reconstruction | residual heat map, the heat map over the
original with an opacity slider, the defect regions outlined on the original and the overlay,
and the score against the threshold with the OK/NG badge (the model's region rules included)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QGridLayout, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from inspector.gui.widgets.decision import DecisionBadge, score_text
from inspector.gui.widgets.image_view import TitledImage


RECONSTRUCTION_HINT = "What the model expects a good part to look like"
NO_RECONSTRUCTION = "no reconstruction (this model makes none)"


def heat_image(prediction) -> np.ndarray:
    """The residual heat map alone: the core's overlay drawn on black at full opacity."""
    from inspector.engine.predictor import heat_overlay

    return heat_overlay(np.zeros(prediction.heat.shape, np.uint8), prediction.heat, 1.0)


class PredictionView(QWidget):
    opacityChanged = Signal(float)
    filesDropped = Signal(object)

    def __init__(self, opacity: float = 0.5, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prediction = None
        hint = "Select an image on the left, or drop an image file here"
        self.original = TitledImage("Original", hint)
        self.reconstruction = TitledImage("Reconstruction", RECONSTRUCTION_HINT)
        self.heat = TitledImage("Residual heat map", "Where the image differs from the reconstruction")
        self.overlay = TitledImage("Heat map over the original", "")
        for view in (self.original, self.reconstruction, self.heat, self.overlay):
            view.view.setAcceptDrops(True)
            view.view.filesDropped.connect(self.filesDropped)

        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(opacity * 100))
        self.opacity.setToolTip("Heat-map opacity ( [ and ] )")
        self.opacity.setAccessibleName("heat map opacity")
        self.opacity_label = QLabel()
        self.opacity.valueChanged.connect(self._on_opacity)
        self._on_opacity(self.opacity.value(), emit=False)
        self.show_regions = QCheckBox("Regions")
        self.show_regions.setChecked(True)
        self.show_regions.setToolTip("Outline the defect regions (heat at or above the model's region level)")
        self.show_regions.toggled.connect(self._draw_regions)
        self.regions_label = QLabel()
        self.regions_label.setObjectName("hint")

        self.badge = DecisionBadge()
        self.score = QLabel()
        self.score.setTextFormat(Qt.TextFormat.RichText)
        self.details = QLabel()
        self.details.setObjectName("hint")
        self.details.setWordWrap(True)

        grid = QGridLayout()
        grid.setSpacing(10)
        grid.addWidget(self.original, 0, 0)
        grid.addWidget(self.reconstruction, 0, 1)
        grid.addWidget(self.heat, 1, 0)
        grid.addWidget(self.overlay, 1, 1)
        opacity_row = QHBoxLayout()
        opacity_row.addWidget(self.show_regions)
        opacity_row.addWidget(self.regions_label)
        opacity_row.addStretch(1)
        opacity_row.addWidget(QLabel("Opacity"))
        opacity_row.addWidget(self.opacity, 1)
        opacity_row.addWidget(self.opacity_label)
        grid.addLayout(opacity_row, 2, 1)
        score_row = QHBoxLayout()
        score_row.addWidget(self.badge)
        text = QVBoxLayout()
        text.addWidget(self.score)
        text.addWidget(self.details)
        score_row.addLayout(text, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(score_row)
        layout.addLayout(grid, 1)

    def opacity_value(self) -> float:
        return self.opacity.value() / 100

    def step_opacity(self, delta: float) -> None:
        self.opacity.setValue(self.opacity.value() + round(delta * 100))

    def clear(self, message: str = "") -> None:
        self.prediction = None
        self.reconstruction.view.placeholder = RECONSTRUCTION_HINT
        for view in (self.reconstruction, self.heat, self.overlay):
            view.set_image(None)
        for view in (self.original, self.overlay):
            view.view.set_outlines([])
        self.regions_label.setText("")
        self.badge.set_decision("")
        self.score.setText(message)
        self.details.setText("")

    def show_original(self, image: np.ndarray | None, message: str = "") -> None:
        """An image without a model (or that could not be scored): just the original."""
        self.clear(message)
        self.original.set_image(image)

    def set_prediction(self, prediction, threshold: float, details: str = "") -> None:
        self.prediction = prediction
        self.original.set_image(prediction.image)
        recon = prediction.reconstruction  # None: the method made none for this image
        self.reconstruction.view.placeholder = RECONSTRUCTION_HINT if recon is not None else NO_RECONSTRUCTION
        self.reconstruction.set_image(recon)
        self.heat.set_image(heat_image(prediction))
        self.overlay.set_image(prediction.overlay(self.opacity_value()))
        self.details.setText(details)
        self._draw_regions()
        self.set_threshold(threshold)

    def _draw_regions(self) -> None:
        p = self.prediction
        regions = p.regions if p is not None and self.show_regions.isChecked() else []
        for view in (self.original, self.overlay):
            view.view.set_outlines([r.bbox for r in regions])
        if p is None:
            return
        unit = p.rules.unit if p.rules is not None else "px"
        count = len(p.regions)
        self.regions_label.setText(f"{count} · largest {p.regions[0].area:.4g} {unit}" if count else "none")

    def set_threshold(self, threshold: float) -> None:
        """Re-decide the shown image against a (new) threshold (with the model's region rules)."""
        p = self.prediction
        if p is None:
            return
        decision, reason = p.decide(threshold)
        self.badge.set_decision(decision)
        rule = f" &nbsp;·&nbsp; {reason}" if p.rules is not None else ""
        self.score.setText(f"{score_text(p.score, threshold, decision)} &nbsp;·&nbsp; {p.elapsed_ms:.0f} ms{rule}")

    def _on_opacity(self, value: int, emit: bool = True) -> None:
        self.opacity_label.setText(f"{value} %")
        if self.prediction is not None:
            self.overlay.set_image(self.prediction.overlay(value / 100))
        if emit:
            self.opacityChanged.emit(value / 100)
