"""The thumbnail grid: a QListView over a list model whose thumbnails load lazily in a worker.

Thumbnails are read only when a row is painted (visible rows first), then the rest of the
folder is swept in the background so every unreadable file is found and reported with its
reason. Decoded thumbnails live in a bounded cache; evicted ones are read again when needed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import cv2
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPalette, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from inspector.data.datasets import DEFECT, GOOD, Sample
from inspector.data.images import ImageReadError, read_image
from inspector.engine.decision import NG, OK
from inspector.gui.widgets.decision import decision_color
from inspector.gui.widgets.filter_proxy import KeyFilterProxy
from inspector.gui.widgets.image_view import to_qimage
from inspector.gui.workers import Job

THUMB = 112  # logical pixels
CACHE_LIMIT = 3000

SampleRole = Qt.ItemDataRole.UserRole + 1
KindRole = Qt.ItemDataRole.UserRole + 2  # filter keys: train, test_good, test_defect, unknown, unreadable
DecisionRole = Qt.ItemDataRole.UserRole + 3
ErrorRole = Qt.ItemDataRole.UserRole + 4

FILTERS = {
    "all": "All images",
    "train": "Training (good)",
    "test": "Test split",
    "test_good": "Test: good",
    "test_defect": "Test: defect",
    "unknown": "Unlabelled",
    OK: "Scored OK",
    NG: "Scored NG",
    "unreadable": "Unreadable",
}


class _Requests:
    """Paths the view wants now (served newest first), then a sweep over the whole folder."""

    def __init__(self, sweep: list[Path]) -> None:
        self.lock = threading.Lock()
        self.wanted: list[Path] = []
        self.sweep = sweep
        self.position = 0
        self.done: set[Path] = set()

    def want(self, path: Path) -> None:
        with self.lock:
            self.wanted.append(path)

    def next(self) -> Path | None:
        with self.lock:
            while self.wanted:
                path = self.wanted.pop()
                if path not in self.done:
                    self.done.add(path)
                    return path
            while self.position < len(self.sweep):
                path = self.sweep[self.position]
                self.position += 1
                if path not in self.done:
                    self.done.add(path)
                    return path
            return None

    def forget(self, path: Path) -> None:
        """Evicted from the cache: may be read again."""
        with self.lock:
            self.done.discard(path)


def _load_thumbnails(requests: _Requests, side: int, report: Callable, cancel) -> int:
    batch, last, count = [], time.monotonic(), 0
    while (path := requests.next()) is not None:
        cancel.raise_if_cancelled()
        try:
            image = read_image(path)
            h, w = image.shape[:2]
            f = side / max(h, w)
            if f < 1:
                image = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
            batch.append((path, image, None))
        except ImageReadError as e:
            batch.append((path, None, e.reason))
        count += 1
        if len(batch) >= 48 or time.monotonic() - last > 0.1:
            report(batch)
            batch, last = [], time.monotonic()
    if batch:
        report(batch)
    return count


class ThumbnailModel(QAbstractListModel):
    unreadableFound = Signal(object)  # {Path: reason}
    sweepProgress = Signal(int, int)  # files checked, total
    sweepFinished = Signal()

    def __init__(self, decide: Callable[[Path], str] | None = None, parent=None) -> None:
        super().__init__(parent)
        self.samples: list[Sample] = []
        self.kinds: list[str] = []
        self.row_of: dict[Path, int] = {}
        self.cache: OrderedDict[Path, QPixmap] = OrderedDict()
        self.failed: dict[Path, str] = {}
        self.decide = decide or (lambda path: "")
        self.device_pixel_ratio = 1.0
        self._requests: _Requests | None = None
        self._job: Job | None = None
        self.checked = 0

    # --- content ------------------------------------------------------------------------------
    def set_samples(self, train: list[Sample], test: list[Sample], check_all: bool = True) -> None:
        self.stop()
        self.beginResetModel()
        self.samples = list(train) + list(test)
        self.kinds = ["train"] * len(train) + [
            {GOOD: "test_good", DEFECT: "test_defect"}.get(s.label, "unknown") for s in test
        ]
        self.row_of = {s.path: i for i, s in enumerate(self.samples)}
        self.cache.clear()
        self.failed.clear()
        self.checked = 0
        self.endResetModel()
        self._requests = _Requests([s.path for s in self.samples] if check_all else [])
        if self.samples:
            self._start()

    def stop(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self._job = None

    def loading(self) -> bool:
        return self._job is not None and self._job.running

    def refresh_decisions(self) -> None:
        if self.samples:
            self.dataChanged.emit(self.index(0), self.index(len(self.samples) - 1), [DecisionRole, KindRole])

    # --- Qt model -----------------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.samples)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        sample = self.samples[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return sample.path.name
        if role == Qt.ItemDataRole.DecorationRole:
            pixmap = self.cache.get(sample.path)
            if pixmap is not None:
                self.cache.move_to_end(sample.path)
            elif sample.path not in self.failed:
                self._want(sample.path)
            return pixmap
        if role == Qt.ItemDataRole.ToolTipRole:
            text = f"{sample.path}\nlabel: {sample.defect_type}  ·  split: {'train' if self.kinds[index.row()] == 'train' else 'test'}"
            if sample.path in self.failed:
                text += f"\nunreadable: {self.failed[sample.path]}"
            decision = self.decide(sample.path)
            return text + (f"\ndecision: {decision}" if decision else "")
        if role == SampleRole:
            return sample
        if role == KindRole:
            return self.kinds[index.row()]
        if role == DecisionRole:
            return self.decide(sample.path)
        if role == ErrorRole:
            return self.failed.get(sample.path)
        return None

    # --- loading ------------------------------------------------------------------------------
    def _want(self, path: Path) -> None:
        if self._requests is None:
            return
        self._requests.want(path)
        if not self.loading():
            self._start()

    def _start(self) -> None:
        side = int(THUMB * self.device_pixel_ratio)
        job = Job("Reading thumbnails", _load_thumbnails, self._requests, side, parent=self)
        job.quiet = True
        job.progress.connect(self._on_batch)
        job.finished.connect(self._on_finished)
        self._job = job.start()

    def _on_finished(self) -> None:
        job = self.sender()
        if job is self._job:
            self._job = None
            if self._requests is not None and self._requests.position >= len(self._requests.sweep):
                self.sweepFinished.emit()
            if self._requests is not None and self._requests.wanted:
                self._start()

    def _on_batch(self, batch: list) -> None:
        if self.sender() is not self._job:
            return  # a batch from a folder that is no longer shown
        failures = {}
        rows = []
        for path, image, reason in batch:
            row = self.row_of.get(path)
            if row is None:
                continue
            if image is None:
                self.failed[path] = reason
                failures[path] = reason
            else:
                self.cache[path] = QPixmap.fromImage(to_qimage(image))
                self.cache.move_to_end(path)
            rows.append(row)
        while len(self.cache) > CACHE_LIMIT:
            evicted, _ = self.cache.popitem(last=False)
            self._requests.forget(evicted)
        self.checked = min(len(self.samples), self.checked + len(batch))
        if rows:
            self.dataChanged.emit(self.index(min(rows)), self.index(max(rows)))
        if failures:
            self.unreadableFound.emit(failures)
        if self._requests is not None and self._requests.sweep:
            self.sweepProgress.emit(self._requests.position, len(self._requests.sweep))


class ThumbnailFilter(KeyFilterProxy):
    def accepts(self, row: int, parent) -> bool:
        index = self.sourceModel().index(row, 0, parent)
        if self.key in (OK, NG):
            return index.data(DecisionRole) == self.key
        if self.key == "unreadable":
            return index.data(ErrorRole) is not None
        if self.key == "test":
            return index.data(KindRole) != "train"
        return index.data(KindRole) == self.key


class ThumbnailDelegate(QStyledItemDelegate):
    """Thumbnail, file name, label chip and (when scored) the OK/NG mark."""

    TEXT_H = 20

    def sizeHint(self, option, index) -> QSize:
        return QSize(THUMB + 16, THUMB + self.TEXT_H + 16)

    def paint(self, p: QPainter, option: QStyleOptionViewItem, index) -> None:
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = option.palette
        cell = option.rect.adjusted(3, 3, -3, -3)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(pal.color(QPalette.ColorRole.Highlight))
            p.drawRoundedRect(cell, 6, 6)
        box = QRect(cell.x() + (cell.width() - THUMB) // 2, cell.y() + 5, THUMB, THUMB)
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        error = index.data(ErrorRole)
        if pixmap is not None and not pixmap.isNull():
            size = pixmap.size().scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(box.center())
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawPixmap(target, pixmap)
        else:
            p.setPen(pal.color(QPalette.ColorRole.Mid))
            p.setBrush(pal.color(QPalette.ColorRole.AlternateBase))
            p.drawRoundedRect(box, 4, 4)
            p.setPen(pal.color(QPalette.ColorRole.PlaceholderText) if error is None else decision_color(NG))
            p.drawText(box.adjusted(6, 6, -6, -6), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, "unreadable" if error else "…")

        sample: Sample = index.data(SampleRole)
        kind = index.data(KindRole)
        chip = "train" if kind == "train" else sample.defect_type
        small = QFont(option.font)
        small.setPointSizeF(max(6.5, option.font.pointSizeF() * 0.8))
        p.setFont(small)
        metrics = p.fontMetrics()
        chip_text = metrics.elidedText(chip, Qt.TextElideMode.ElideRight, THUMB // 2)
        chip_rect = QRectF(box.x() + 3, box.y() + 3, metrics.horizontalAdvance(chip_text) + 10, metrics.height() + 2)
        path = QPainterPath()
        path.addRoundedRect(chip_rect, 4, 4)
        background = QColor(0, 0, 0, 150)
        if sample.label == DEFECT:
            background = QColor(decision_color(NG))
            background.setAlpha(200)
        p.fillPath(path, background)
        p.setPen(QColor("white"))
        p.drawText(chip_rect, Qt.AlignmentFlag.AlignCenter, chip_text)

        decision = index.data(DecisionRole)
        color = decision_color(decision)
        if color is not None:
            bold = QFont(small)
            bold.setBold(True)
            p.setFont(bold)
            w = p.fontMetrics().horizontalAdvance(decision) + 10
            badge = QRectF(box.right() - w - 2, box.y() + 3, w, p.fontMetrics().height() + 2)
            path = QPainterPath()
            path.addRoundedRect(badge, 4, 4)
            p.fillPath(path, color)
            p.drawText(badge, Qt.AlignmentFlag.AlignCenter, decision)

        p.setFont(option.font)
        p.setPen(pal.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
        text_rect = QRect(cell.x() + 4, box.bottom() + 4, cell.width() - 8, self.TEXT_H)
        name = p.fontMetrics().elidedText(index.data(Qt.ItemDataRole.DisplayRole), Qt.TextElideMode.ElideMiddle, text_rect.width())
        p.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, name)
        p.restore()


class ThumbnailGrid(QListView):
    """Icon-mode list of thumbnails; image files dropped on it are offered as new good images."""

    filesDropped = Signal(object)  # list[Path]

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setItemDelegate(ThumbnailDelegate(self))
        self.setGridSize(QSize(THUMB + 20, THUMB + ThumbnailDelegate.TEXT_H + 20))
        self.setSpacing(2)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(200)
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)

    def selected_samples(self) -> list[Sample]:
        return [i.data(SampleRole) for i in self.selectionModel().selectedIndexes()] if self.selectionModel() else []

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.filesDropped.emit(paths)
        else:
            super().dropEvent(event)

