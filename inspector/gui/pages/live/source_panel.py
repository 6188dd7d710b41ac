"""What to inspect with what: the source (camera, stream, video file, folder or a simulated line),
the model, the OK images to keep, Start and Stop. Remembers the recent sources, the model and the
OK sampling."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QStyle,
    QWidget,
)

from inspector.data.sources import SIMULATED_PREFIX
from inspector.engine.demo import demo_data_dir

RECENT_SOURCES = 8


class SourcePanel(QWidget):
    """The source and model chooser; the page does the starting and stopping."""

    startRequested = Signal()
    stopRequested = Signal()
    modelChosen = Signal(str)  # a registry name ('' when there is none)
    keepOkChanged = Signal(int)  # keep every N-th OK image (0 = none)

    def __init__(self, settings=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.source = QComboBox()
        self.source.setEditable(True)
        self.source.setMinimumContentsLength(28)
        self.source.lineEdit().setPlaceholderText("camera index (0), rtsp://… or http://…, video file, folder or sim:FOLDER")
        self.source.setToolTip("A camera index, a stream URL, a video file, a folder whose new images are inspected, "
                               "or sim:FOLDER, a simulated line fed with that folder's images")
        for item in self._recent_sources() or ["0"]:
            self.source.addItem(item)
        browse_video = QPushButton("Video…")
        browse_video.clicked.connect(self._browse_video)
        browse_folder = QPushButton("Folder…")
        browse_folder.clicked.connect(self._browse_folder)
        self.simulate_button = QPushButton("Simulated line")
        self.simulate_button.setToolTip("No camera? Feed the demo's test cells (good and defective) as a line would, two parts a second; "
                                        "without the demo data, pick a folder of part images")
        self.simulate_button.clicked.connect(lambda: self.choose_simulated_line())  # not clicked(checked) as the folder
        self.loop = QCheckBox("Loop video")
        self.loop.setChecked(True)
        self.realtime = QCheckBox("Real time")
        self.realtime.setChecked(True)
        self.realtime.setToolTip("Play a video file at its frame rate like a camera (frames may be dropped); "
                                 "off: inspect every frame as fast as possible")
        self.model = QComboBox()
        self.model.setMinimumContentsLength(18)
        self.model.setToolTip("The registered model; live inspection uses its version in use")
        self.model.currentIndexChanged.connect(lambda _: self.modelChosen.emit(self.model_name()))
        self.keep_ok = QSpinBox()
        self.keep_ok.setRange(0, 100000)
        self.keep_ok.setSpecialValueText("none")
        self.keep_ok.setPrefix("every ")
        self.keep_ok.setValue(int(settings.get("live/keep_ok_every", 0)) if settings is not None else 0)
        self.keep_ok.setToolTip("Also keep the image of every N-th OK frame (NG frames are always kept)")
        self.keep_ok.valueChanged.connect(self._keep_ok_changed)
        self.start_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Start")
        self.stop_button = QPushButton(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaStop), "Stop")
        self.start_button.clicked.connect(self.startRequested)
        self.stop_button.clicked.connect(self.stopRequested)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QLabel("Source"), 0, 0)
        grid.addWidget(self.source, 0, 1)
        grid.addWidget(browse_video, 0, 2)
        grid.addWidget(browse_folder, 0, 3)
        grid.addWidget(self.simulate_button, 0, 4)
        grid.addWidget(self.loop, 0, 5)
        grid.addWidget(self.realtime, 0, 6)
        grid.addWidget(QLabel("Model"), 1, 0)
        grid.addWidget(self.model, 1, 1)
        grid.addWidget(self.start_button, 1, 2)
        grid.addWidget(self.stop_button, 1, 3)
        grid.addWidget(QLabel("Keep OK images"), 1, 4, 1, 2)
        grid.addWidget(self.keep_ok, 1, 6)
        grid.setColumnStretch(1, 1)

    # --- what was chosen ---------------------------------------------------------------------------
    def source_text(self) -> str:
        return self.source.currentText().strip()

    def model_name(self) -> str:
        return self.model.currentData() or ""

    def source_options(self) -> dict:
        """``open_source`` options as ticked."""
        return {"loop": self.loop.isChecked(), "realtime": self.realtime.isChecked()}

    # --- the model list ----------------------------------------------------------------------------
    def set_models(self, names: list[tuple[str, int]], preferred: str = "", exported: Sequence[tuple[str, str]] = ()) -> None:
        """List (name, version in use), then ``exported`` (folder, text); keep the current choice,
        else the remembered one, else ``preferred``. Emits ``modelChosen`` once."""
        wanted = self.model_name() or (self.settings.get("live/model", "") if self.settings is not None else "") or preferred
        self.model.blockSignals(True)
        self.model.clear()
        for name, version in names:
            self.model.addItem(self._model_text(name, version), name)
        for folder, text in exported:
            self.model.addItem(text, folder)
        index = self.model.findData(wanted)
        self.model.setCurrentIndex(index if index >= 0 else 0)
        self.model.blockSignals(False)
        if not names and not exported:
            self.model.setPlaceholderText("no trained models yet: train one first")
        self.modelChosen.emit(self.model_name())

    def set_version_in_use(self, name: str, version: int) -> None:
        index = self.model.findData(name)
        if index >= 0:
            self.model.setItemText(index, self._model_text(name, version))

    @staticmethod
    def _model_text(name: str, version: int) -> str:
        return f"{name}  (v{version} in use)"

    # --- state ---------------------------------------------------------------------------------------
    def set_running(self, running: bool, starting: bool = False) -> None:
        self.start_button.setEnabled(not running and not starting)
        self.stop_button.setEnabled(running)
        self.source.setEnabled(not running)
        self.model.setEnabled(not running)

    def remember(self) -> None:
        """The source just started (first in the recent list) and the model."""
        if self.settings is None:
            return
        text = self.source_text()
        recent = [text] + [s for s in self._recent_sources() if s != text]
        self.settings.set_json("live/recent_sources", recent[:RECENT_SOURCES])
        if self.model_name():
            self.settings.set("live/model", self.model_name())

    def _recent_sources(self) -> list[str]:
        return [str(s) for s in self.settings.get_json("live/recent_sources", [])] if self.settings is not None else []

    def _keep_ok_changed(self, value: int) -> None:
        if self.settings is not None:
            self.settings.set("live/keep_ok_every", int(value))
        self.keepOkChanged.emit(int(value))

    def _browse_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Video file", "", "Videos (*.avi *.mp4 *.mkv *.mov);;All files (*)")
        if path:
            self.source.setCurrentText(path)

    def choose_simulated_line(self, folder: Path | None = None) -> bool:
        """A simulated line as the source: ``folder``, else the demo's test split, else one the user
        picks. False when there is none (the dialog was cancelled)."""
        if folder is None:
            demo = demo_data_dir() / "test"
            folder = demo if demo.is_dir() else None
        if folder is None:
            picked = QFileDialog.getExistingDirectory(self, "Folder of part images for a simulated line")
            if not picked:
                return False
            folder = Path(picked)
        self.source.setCurrentText(f"{SIMULATED_PREFIX}{folder}")
        return True

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder to watch for new images")
        if path:
            self.source.setCurrentText(path)
