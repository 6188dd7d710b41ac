"""Data: open a camera folder (MVTec layout, labels.csv or a flat folder) or the ELPV demo;
thumbnails with labels and counts; unreadable files listed with the reason; add good images
by drag and drop or by choosing files."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.data.datasets import DatasetError
from inspector.data.images import IMAGE_EXTENSIONS
from inspector.data.add_images import add_good_images
from inspector.gui.settings import Settings
from inspector.gui.widgets.thumbnails import FILTERS, SampleRole, ThumbnailFilter, ThumbnailGrid, ThumbnailModel
from inspector.gui.workers import run_job

LAYOUT_NAMES = {"mvtec": "MVTec layout", "csv": "folder with labels.csv", "folder": "flat folder of good images"}


class DataPage(QWidget):
    demoRequested = Signal()
    inspectRequested = Signal(Path)  # show this image on the results page

    def __init__(self, session, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings

        self.open_button = QPushButton("Open folder…")
        self.open_button.setToolTip("Open a folder of camera images (Ctrl+O)")
        self.open_button.clicked.connect(self.choose_folder)
        self.demo_button = QPushButton("ELPV demo data")
        self.demo_button.setToolTip("Real solar-cell images from the elpv-dataset package")
        self.demo_button.clicked.connect(self.demoRequested)
        self.add_button = QPushButton("Add good images…")
        self.add_button.setToolTip("Copy image files into the good training set (or drop them on the grid)")
        self.add_button.clicked.connect(self.choose_images)
        self.path_label = QLabel()
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.path_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # long paths must not widen the window
        self.filter = QComboBox()
        for key, text in FILTERS.items():
            self.filter.addItem(text, key)
        self.filter.currentIndexChanged.connect(lambda: self.proxy.set_key(self.filter.currentData()))
        top = QHBoxLayout()
        for w in (self.open_button, self.demo_button, self.add_button):
            top.addWidget(w)
        top.addSpacing(12)
        top.addWidget(self.path_label, 1)
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.filter)

        self.counts = QLabel()
        self.counts.setObjectName("counts")
        self.counts.setTextFormat(Qt.TextFormat.RichText)

        self.model = ThumbnailModel(self._decision)
        self.model.unreadableFound.connect(session.add_unreadable)
        self.model.sweepProgress.connect(self._on_sweep)
        self.model.sweepFinished.connect(self._on_sweep_finished)
        self.proxy = ThumbnailFilter(self)
        self.proxy.setSourceModel(self.model)
        self.grid = ThumbnailGrid()
        self.grid.setModel(self.proxy)
        self.grid.filesDropped.connect(self.add_images)
        self.grid.doubleClicked.connect(lambda index: self.inspectRequested.emit(index.data(SampleRole).path))
        self.grid.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.grid.customContextMenuRequested.connect(self._context_menu)

        self.errors = QTreeWidget()
        self.errors.setHeaderLabels(["Unreadable file", "Reason"])
        self.errors.setRootIsDecorated(False)
        self.errors.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.errors.setColumnWidth(0, 380)
        self.errors_title = QLabel()
        self.errors_box = errors_box = QWidget()
        eb = QVBoxLayout(errors_box)
        eb.setContentsMargins(0, 4, 0, 0)
        eb.addWidget(self.errors_title)
        eb.addWidget(self.errors)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("dataSplitter")
        self.splitter.addWidget(self.grid)
        self.splitter.addWidget(errors_box)
        self.splitter.setStretchFactor(0, 5)
        self.splitter.setStretchFactor(1, 1)

        self.placeholder = _placeholder(self.choose_folder, self.demoRequested.emit)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.splitter)

        self.check_label = QLabel()
        self.check_bar = QProgressBar()
        self.check_bar.setMaximumWidth(240)
        self.check_bar.setTextVisible(False)
        footer = QHBoxLayout()
        footer.addWidget(self.check_label, 1)
        footer.addWidget(self.check_bar)
        self.check_bar.hide()

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.counts)
        layout.addWidget(self.stack, 1)
        layout.addLayout(footer)

        session.datasetChanged.connect(self._on_dataset)
        session.unreadableChanged.connect(self._on_unreadable)
        session.scoresChanged.connect(self.model.refresh_decisions)
        session.thresholdChanged.connect(self.model.refresh_decisions)
        session.modelChanged.connect(self.model.refresh_decisions)
        self._on_dataset()

    # --- actions ------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images", self.settings.last_folder or str(Path.home()))
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path) -> bool:
        try:
            dataset = self.session.open_folder(folder)
        except (DatasetError, OSError) as e:
            self.session.error.emit(f"Cannot open {folder}: {e}")
            return False
        self.settings.last_folder = str(dataset.root)
        return True

    def choose_images(self) -> None:
        if self.session.dataset is None:
            self.session.error.emit("Open a dataset folder first; the images are copied into its good training set.")
            return
        patterns = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
        files, _ = QFileDialog.getOpenFileNames(self, "Add good images", self.settings.last_folder, f"Images ({patterns})")
        if files:
            self.add_images([Path(f) for f in files])

    def add_images(self, paths: list[Path]):
        """Copy dropped or chosen images into the good training set (in the background), then reopen."""
        dataset = self.session.dataset
        if dataset is None:
            self.session.error.emit("Open a dataset folder first; the images are copied into its good training set.")
            return None

        def done(result) -> None:
            added, rejected = result
            if self.session.dataset is not None and self.session.dataset.root == dataset.root:
                self.open_folder(dataset.root)
            text = f"Added {len(added)} image(s) to the good training set of {dataset.name}."
            if rejected:
                listed = "; ".join(f"{p.name} ({reason})" for p, reason in rejected[:5])
                more = f" and {len(rejected) - 5} more" if len(rejected) > 5 else ""
                self.session.error.emit(f"{text} Not added: {listed}{more}.")
            else:
                self.session.info.emit(text)

        job = run_job("Adding good images", lambda report, cancel: add_good_images(dataset, list(paths)), parent=self)
        job.succeeded.connect(done)
        job.failed.connect(lambda message: self.session.error.emit(f"Could not add the images: {message}"))
        return job

    # --- updates ------------------------------------------------------------------------------
    def _decision(self, path: Path) -> str:
        return self.session.decision(self.session.scores.get(path), path)

    def _on_dataset(self) -> None:
        dataset = self.session.dataset
        self.add_button.setEnabled(dataset is not None)
        if dataset is None:
            self.model.set_samples([], [])
            self.stack.setCurrentWidget(self.placeholder)
            self.path_label.setText("No folder open")
            self.counts.setText("")
            return
        self.stack.setCurrentWidget(self.splitter)
        self.path_label.setText(f"<b>{dataset.name}</b> — {dataset.root} ({LAYOUT_NAMES.get(dataset.layout, dataset.layout)})")
        self.path_label.setToolTip(str(dataset.root))
        self.model.device_pixel_ratio = self.devicePixelRatioF()
        self.model.set_samples(dataset.train, dataset.test)
        self.check_bar.setRange(0, max(len(self.model.samples), 1))
        self.check_bar.setValue(0)
        self.check_bar.show()
        self.check_label.setText(f"Checking {len(self.model.samples)} images…")
        self._on_unreadable()

    def _on_unreadable(self) -> None:
        failures = self.session.unreadable
        self.errors.clear()
        for path, reason in sorted(failures.items()):
            item = QTreeWidgetItem([str(path), reason])
            item.setToolTip(0, str(path))
            item.setToolTip(1, reason)
            self.errors.addTopLevelItem(item)
        self.errors_title.setText(f"<b>{len(failures)} unreadable file(s)</b> — left out of training and scoring")
        self.errors_box.setVisible(bool(failures))
        self._update_counts()

    def _update_counts(self) -> None:
        dataset = self.session.dataset
        if dataset is None:
            return
        c = dataset.counts()
        parts = [
            (c["train_good"], "training (good)"),
            (c["test_good"], "test good"),
            (c["test_defect"], "test defect"),
            (c["test_unknown"], "unlabelled"),
            (len(self.session.unreadable), "unreadable"),
        ]
        self.counts.setText(" &nbsp;·&nbsp; ".join(f"<b>{n}</b> {text}" for n, text in parts))

    def _on_sweep(self, done: int, total: int) -> None:
        self.check_bar.setRange(0, max(total, 1))
        self.check_bar.setValue(done)
        self.check_label.setText(f"Checking images: {done} of {total}…")

    def _on_sweep_finished(self) -> None:
        self.check_bar.hide()
        n = len(self.model.samples)
        bad = len(self.model.failed)
        self.check_label.setText(f"All {n} images checked" + (f": {bad} unreadable (listed above)" if bad else ": all readable"))

    def _context_menu(self, pos) -> None:
        index = self.grid.indexAt(pos)
        if not index.isValid():
            return
        path = index.data(SampleRole).path
        menu = QMenu(self)
        menu.addAction("Inspect on the Results page", lambda: self.inspectRequested.emit(path))
        menu.addAction("Copy path", lambda: _copy(str(path)))
        menu.exec(self.grid.viewport().mapToGlobal(pos))


def _copy(text: str) -> None:
    from PySide6.QtGui import QGuiApplication

    QGuiApplication.clipboard().setText(text)


def _placeholder(open_folder, open_demo) -> QWidget:
    from inspector.gui.resources import app_icon

    w = QWidget()
    layout = QVBoxLayout(w)
    layout.addStretch(1)
    icon = QLabel()
    icon.setPixmap(app_icon().pixmap(96, 96))
    icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
    title = QLabel("<h2>Open a folder of camera images</h2>")
    title.setAlignment(Qt.AlignmentFlag.AlignCenter)
    text = QLabel(
        "A folder in the MVTec layout (train/good, test/&lt;type&gt;), a folder with a labels.csv, "
        "or a flat folder of images of <b>good</b> parts.<br>Or start with real solar-cell images from the ELPV demo set."
    )
    text.setAlignment(Qt.AlignmentFlag.AlignCenter)
    text.setWordWrap(True)
    buttons = QHBoxLayout()
    buttons.addStretch(1)
    for label, slot in (("Open folder…  (Ctrl+O)", open_folder), ("ELPV demo data", open_demo)):
        b = QPushButton(label)
        b.clicked.connect(slot)
        buttons.addWidget(b)
    buttons.addStretch(1)
    for item in (icon, title, text):
        layout.addWidget(item)
    layout.addLayout(buttons)
    layout.addStretch(2)
    return w
