"""Showing numpy images: conversion to QImage, and a view that fits the image to its box."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget


def to_qimage(array: np.ndarray) -> QImage:
    """uint8 (H, W) gray or (H, W, 3) RGB → a QImage that owns a copy of the pixels."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    h, w = array.shape[:2]
    if array.ndim == 2:
        image = QImage(array.data, w, h, array.strides[0], QImage.Format.Format_Grayscale8)
    elif array.shape[2] == 3:
        image = QImage(array.data, w, h, array.strides[0], QImage.Format.Format_RGB888)
    elif array.shape[2] == 4:
        image = QImage(array.data, w, h, array.strides[0], QImage.Format.Format_RGBA8888)
    else:
        raise ValueError(f"cannot show an image of shape {array.shape}")
    return image.copy()  # detach from the numpy buffer


class ImageView(QWidget):
    """An image scaled to fit (aspect kept), centred; a hint text while empty. Accepts file drops."""

    filesDropped = Signal(object)  # list[Path]

    def __init__(self, placeholder: str = "", parent: QWidget | None = None, accept_drops: bool = False) -> None:
        super().__init__(parent)
        self._pixmap: QPixmap | None = None
        self._array: np.ndarray | None = None
        self._outlines: list[tuple[int, int, int, int]] = []
        self._outline_color = QColor("#ffd400")
        self.placeholder = placeholder
        self.setMinimumSize(96, 96)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAcceptDrops(accept_drops)

    def set_image(self, array: np.ndarray | None) -> None:
        self._array = array
        self._pixmap = QPixmap.fromImage(to_qimage(array)) if array is not None else None
        self.update()

    def image(self) -> np.ndarray | None:
        return self._array

    def set_outlines(self, boxes: list[tuple[int, int, int, int]], color: QColor | None = None) -> None:
        """Rectangles (x, y, w, h in image pixels) drawn over the image, e.g. defect regions."""
        self._outlines = [tuple(int(v) for v in b) for b in boxes]  # type: ignore[misc]
        if color is not None:
            self._outline_color = color
        self.update()

    def outlines(self) -> list[tuple[int, int, int, int]]:
        return list(self._outlines)

    def has_image(self) -> bool:
        return self._pixmap is not None

    def sizeHint(self) -> QSize:
        return QSize(256, 256)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        rect = self.rect()
        p.fillRect(rect, self.palette().color(QPalette.ColorRole.Base))
        if self._pixmap is None:
            p.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            p.drawText(rect.adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        pw, ph = self._pixmap.width(), self._pixmap.height()
        scale = min(rect.width() / pw, rect.height() / ph)
        w, h = pw * scale, ph * scale
        target = QRectF(rect.x() + (rect.width() - w) / 2, rect.y() + (rect.height() - h) / 2, w, h)
        # enlarged small images keep their pixels visible; shrunk ones are smoothed
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale < 1.0 or pw >= 128)
        p.drawPixmap(target, self._pixmap, QRectF(self._pixmap.rect()))
        if self._outlines:
            pen = QPen(self._outline_color, 2)
            pen.setCosmetic(True)  # 2 screen pixels whatever the zoom
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            for x, y, w, h in self._outlines:
                p.drawRect(QRectF(target.x() + x * scale, target.y() + y * scale, w * scale, h * scale))

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        from pathlib import Path

        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.filesDropped.emit(paths)
            event.acceptProposedAction()


class TitledImage(QWidget):
    """An ImageView with a caption above it."""

    def __init__(self, title: str, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(title)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.view = ImageView(placeholder)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.view, 1)

    def set_image(self, array: np.ndarray | None) -> None:
        self.view.set_image(array)
