"""The operator's say: mark the result on screen as a false alarm or a confirmed defect, see the
model's feedback pool, retrain (with progress and Cancel), and put any version in use."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class FeedbackPanel(QGroupBox):
    """Buttons and lists only; the page records the feedback and does the retraining."""

    feedbackRequested = Signal(str)  # "false_alarm" | "confirmed"
    retrainRequested = Signal()
    cancelRequested = Signal()
    versionRequested = Signal(int)  # promote or roll back to this version

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Feedback and retraining", parent)
        self.false_alarm_button = QPushButton("Good — false alarm")
        self.false_alarm_button.setToolTip("This part is good: keep it as a good sample for the next version (F)")
        self.confirmed_button = QPushButton("Defect — confirmed")
        self.confirmed_button.setToolTip("This part is defective: keep it to check new versions against (D)")
        self.false_alarm_button.clicked.connect(lambda: self.feedbackRequested.emit("false_alarm"))
        self.confirmed_button.clicked.connect(lambda: self.feedbackRequested.emit("confirmed"))
        self.pool_label = QLabel("")
        self.pool_label.setWordWrap(True)
        self.retrain_button = QPushButton("Retrain")
        self.retrain_button.setToolTip("Fine-tune a new version from the one in use, on its good images plus the "
                                       "false alarms; inspection goes on meanwhile")
        self.retrain_button.clicked.connect(self.retrainRequested)
        self.retrain_cancel = QPushButton("Cancel")
        self.retrain_cancel.clicked.connect(self.cancelRequested)
        self.retrain_progress = QProgressBar()
        self.retrain_progress.setTextVisible(True)
        self.retrain_status = QLabel("")
        self.retrain_status.setWordWrap(True)
        self.versions = QComboBox()
        self.use_version = QPushButton("Use this version")
        self.use_version.setToolTip("Promote or roll back: the chosen version is put in use (hot-swapped)")
        self.use_version.clicked.connect(self._use_version)

        layout = QVBoxLayout(self)
        marks = QHBoxLayout()
        marks.addWidget(self.false_alarm_button)
        marks.addWidget(self.confirmed_button)
        layout.addLayout(marks)
        layout.addWidget(self.pool_label)
        retrain = QHBoxLayout()
        retrain.addWidget(self.retrain_button)
        retrain.addWidget(self.retrain_progress, 1)
        retrain.addWidget(self.retrain_cancel)
        layout.addLayout(retrain)
        layout.addWidget(self.retrain_status)
        versions = QHBoxLayout()
        versions.addWidget(QLabel("Versions"))
        versions.addWidget(self.versions, 1)
        versions.addWidget(self.use_version)
        layout.addLayout(versions)

    def _use_version(self) -> None:
        if self.versions.currentData() is not None:
            self.versionRequested.emit(int(self.versions.currentData()))

    # --- what is shown -------------------------------------------------------------------------------
    def show_pool(self, name: str, counts: dict[str, int] | None, problem: str = "") -> None:
        if not name:
            self.pool_label.setText("")
        elif counts is None:
            self.pool_label.setText(f"No feedback pool: {problem}")
        else:
            self.pool_label.setText(f"Pool of {name}: {counts['good']} false alarm(s) to learn from, "
                                    f"{counts['defects']} confirmed defect(s)")

    def show_versions(self, rows: list[dict]) -> None:
        """``lineage`` rows, oldest first: listed newest first, the one in use marked."""
        self.versions.clear()
        for row in reversed(rows):
            parent = f", from {row['parent'].split('@')[-1]}" if row["parent"] else ""
            extra = f", +{row['pool_good']} false alarms" if row["pool_good"] else ""
            mark = "  ● in use" if row["active"] else ""
            self.versions.addItem(f"v{row['version']}  {row['created'][:16].replace('T', ' ')}{parent}{extra}{mark}", row["version"])

    def show_progress(self, event) -> None:
        """A training event of the retrain: epochs as a bar, then calibration as busy."""
        phase, steps = getattr(event, "phase", ""), getattr(event, "steps", 0)
        if phase == "train" and steps:
            self.retrain_progress.setRange(0, steps)
            self.retrain_progress.setValue(event.step)
            self.retrain_progress.setFormat(f"epoch {event.epoch}/{event.epochs}")
        elif phase == "calibrate":
            self.retrain_progress.setRange(0, 0)
            self.retrain_progress.setFormat("calibrating and comparing…")

    def retraining(self, name: str) -> None:
        self.retrain_progress.setRange(0, 0)
        self.retrain_status.setText(f"Retraining {name}… inspection goes on with the version in use.")

    def update_buttons(self, can_mark: bool, has_model: bool, busy: bool) -> None:
        self.false_alarm_button.setEnabled(can_mark)
        self.confirmed_button.setEnabled(can_mark)
        self.retrain_button.setEnabled(has_model and not busy)
        self.retrain_cancel.setVisible(busy)
        self.retrain_progress.setVisible(busy)
        self.use_version.setEnabled(self.versions.count() > 0 and not busy)
