"""Train: pick a method (presets per method, key hyper-parameters editable) and the device,
start; the core's Trainer runs in a worker while the window stays usable, with progress and
ETA, live loss curves and sample reconstructions; cancel at any time (the last epoch's
checkpoint is kept, so the same settings resume); the model lands in the registry."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from inspector.engine.device import cpu_bf16
from inspector.engine.threshold import TRAINING_MODES, ThresholdMode
from inspector.gui.methods import PRESETS, MethodChoice
from inspector.gui.settings import Settings
from inspector.gui.widgets.param_form import ParamForm
from inspector.gui.widgets.train_progress import TrainProgressView
from inspector.gui.workers import Job

IMAGE_SIZES = (32, 64, 128, 256)
THRESHOLD_MODES = {  # the modes training chooses itself (TRAINING_MODES), as the combo box offers them
    ThresholdMode.GOOD_QUANTILE: "False-alarm budget on held-out good images",
    ThresholdMode.SYNTHETIC_F1: "Best F1 on synthetic defects (false alarms capped)",
}


class TrainPage(QWidget):
    trainingStarted = Signal()
    trainingFinished = Signal(object)  # registry Entry
    trainingCancelled = Signal()
    trainingFailed = Signal(str)
    trainingEnded = Signal()  # after any of the three above, once the job is no longer running
    inspectRequested = Signal()
    evaluateRequested = Signal()

    def __init__(self, session, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self.methods: dict[str, MethodChoice] = {}
        self.job: Job | None = None
        self._applying = False

        # --- form -------------------------------------------------------------------------
        self.data_label = QLabel()
        self.data_label.setWordWrap(True)
        self.method = QComboBox()
        self.method.addItem("Loading methods…")
        self.method.setEnabled(False)
        self.method.currentIndexChanged.connect(self._on_method)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setObjectName("hint")
        self.preset = QComboBox()
        self.preset.addItems([*PRESETS, "Custom"])
        self.preset.setCurrentText("Standard")
        self.preset.currentTextChanged.connect(self._apply_preset)
        self.image_size = QComboBox()
        for size in IMAGE_SIZES:
            self.image_size.addItem(f"{size} × {size} px", size)
        self.channels = QComboBox()
        self.channels.addItem("Gray", 1)
        self.channels.addItem("Colour (RGB)", 3)
        self.epochs = QSpinBox(minimum=1, maximum=10000, value=15)
        self.batch_size = QSpinBox(minimum=1, maximum=1024, value=32)
        self.lr = QDoubleSpinBox(decimals=6, minimum=1e-6, maximum=1.0, value=2e-4, singleStep=1e-4)
        self.device = QComboBox()
        self.device.addItem("Automatic", "auto")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.augment = QCheckBox("Random flips")
        self.augment.setToolTip("Flip training images at random: for parts that look the same mirrored")
        self.align = QCheckBox("Align parts")
        self.align.setToolTip("Turn and move every part onto a typical good part before scoring: for parts that are not placed identically")
        self.bf16 = QCheckBox("bfloat16 on this CPU")
        if cpu_bf16():
            self.bf16.setChecked(True)
            self.bf16.setToolTip("Compute the training steps in bfloat16 (this CPU has the instructions for it): the GAN "
                                 "methods but BiGAN trained 1.3-1.5x as fast at the same AUROC (bench/RESULTS.md)")
        else:
            self.bf16.setEnabled(False)
            self.bf16.setToolTip("This CPU has no bfloat16 instructions (AVX512-BF16 or AMX): bfloat16 would be slower than "
                                 "float32 here. On a CUDA GPU, mixed precision is used anyway")
        self.tile = QSpinBox(minimum=0, maximum=4096, value=0, singleStep=64, suffix=" px")
        self.tile.setSpecialValueText("Whole image")
        self.tile.setToolTip("For large camera images: score tiles of this many image pixels a side at the image size above, "
                             "so a defect a few pixels wide is not resized away")
        for w in (self.image_size, self.epochs, self.batch_size, self.lr):
            signal = w.currentIndexChanged if isinstance(w, QComboBox) else w.valueChanged
            signal.connect(self._mark_custom)

        self.params = ParamForm()
        self.params_box = QCollapsible("Method parameters")
        self.params_box.addWidget(self.params)

        self.threshold_mode = QComboBox()
        for mode in TRAINING_MODES:
            self.threshold_mode.addItem(THRESHOLD_MODES[mode], mode.value)
        self.false_alarm = QDoubleSpinBox(decimals=1, minimum=0.1, maximum=50.0, value=2.0, suffix=" %")
        self.false_alarm.setToolTip("Share of good parts the threshold may flag on held-out good images")

        self.name = QLineEdit()
        self.name.setToolTip("Registry name; an existing name gets a new version")
        self.finetune = QCheckBox("Fine-tune the loaded model")
        self.resume = QCheckBox("Resume an interrupted run")
        self.resume.setToolTip("Continue from the last finished epoch of a cancelled or interrupted run with the same settings")
        self.resume.setChecked(True)

        self.advise_button = QPushButton("Advise…")
        self.advise_button.setToolTip("Train quick versions of a few methods on these good images and recommend one (a few minutes)")
        self.advise_button.clicked.connect(self.advise)
        self.advice_job: Job | None = None
        self.advice = None  # the last answer (engine.advise.Advice)
        self.confirm_dialogs = True  # tests take the advice without the dialog

        self.start_button = QPushButton("Start training")
        self.start_button.setToolTip("Ctrl+T")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Esc — the last finished epoch is kept as a checkpoint")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)

        form = QFormLayout()
        method_row = QHBoxLayout()
        method_row.addWidget(self.method, 1)
        method_row.addWidget(self.advise_button)
        form.addRow("Method", method_row)
        form.addRow("", self.description)
        form.addRow("Preset", self.preset)
        form.addRow("Image size", self.image_size)
        form.addRow("Colour", self.channels)
        form.addRow("Epochs", self.epochs)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Learning rate", self.lr)
        form.addRow("Device", self.device)
        form.addRow("Seed", self.seed)
        form.addRow("", self.augment)
        form.addRow("", self.align)
        form.addRow("", self.bf16)
        form.addRow("Tiles", self.tile)
        threshold = QFormLayout()
        threshold.addRow("Threshold", self.threshold_mode)
        threshold.addRow("False alarms", self.false_alarm)
        output = QFormLayout()
        output.addRow("Model name", self.name)
        output.addRow("", self.finetune)
        output.addRow("", self.resume)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.cancel_button)

        form_widget = QWidget()
        fl = QVBoxLayout(form_widget)
        fl.addWidget(_group("Data", self.data_label))
        fl.addWidget(_group("Method", form, self.params_box))
        fl.addWidget(_group("Threshold calibration", threshold))
        fl.addWidget(_group("Result", output))
        fl.addLayout(buttons)
        fl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(form_widget)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(360)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        for combo in form_widget.findChildren(QComboBox):  # long entries must not widen the form
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(14)
        scroll.setMinimumWidth(form_widget.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 6)

        self.view = TrainProgressView()
        self.view.inspect_button.clicked.connect(self.inspectRequested)
        self.view.evaluate_button.clicked.connect(self.evaluateRequested)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("trainSplitter")
        splitter.addWidget(scroll)
        splitter.addWidget(self.view)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([420, 800])
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        self._plot_timer = QTimer(self, interval=250, timeout=self.view.redraw)
        session.datasetChanged.connect(self._update_state)
        session.modelChanged.connect(self._update_state)
        self._update_state()

    # --- set-up from the warm-up job ---------------------------------------------------------
    def set_methods(self, choices: list[MethodChoice], devices: list[tuple[str, str]]) -> None:
        self.methods = {c.name: c for c in choices}
        self.method.blockSignals(True)
        self.method.clear()
        model = self.method.model()
        for i, c in enumerate(choices):
            self.method.addItem(c.name if c.available else f"{c.name} (unavailable)", c.name)
            self.method.setItemData(i, c.description if c.available else f"Cannot be loaded: {c.error}", Qt.ItemDataRole.ToolTipRole)
            if not c.available:
                model.item(i).setEnabled(False)
        self.method.setEnabled(True)
        from inspector.models import DEFAULT_METHOD  # the methods are imported by now (the warm-up job)

        last = self.settings.get("train/method", DEFAULT_METHOD)
        names = [c.name for c in choices if c.available]
        pick = last if last in names else (names[0] if names else None)
        if pick is not None:
            self.method.setCurrentIndex(self.method.findData(pick))
        self.method.blockSignals(False)
        self.device.clear()
        for value, label in devices:
            self.device.addItem(label, value)
        self._on_method()

    def select_method(self, name: str) -> None:
        index = self.method.findData(name)
        if index >= 0:
            self.method.setCurrentIndex(index)

    def current_method(self) -> MethodChoice | None:
        return self.methods.get(self.method.currentData())

    def _on_method(self) -> None:
        choice = self.current_method()
        if choice is None:
            self.description.setText("")
            return
        if not choice.available:
            self.description.setText(f"Unavailable: {choice.error}")
            self._update_state()
            return
        self.description.setText(choice.description)
        self.epochs.setEnabled(not choice.fit_only)
        self.epochs.setToolTip("Fitted in one pass over the good images: no epochs" if choice.fit_only else "")
        stored = self.settings.train_form(choice.name)
        self.params.set_fields(choice.params, stored.get("params"), choice.ranges)
        self._applying = True
        self.lr.setValue(float(stored.get("lr", choice.defaults.get("lr", 2e-4))))
        self.channels.setCurrentIndex(self.channels.findData(int(stored.get("channels", choice.defaults.get("channels", 1)))))
        self._applying = False
        if stored.get("image_size"):
            self._set_values(stored)
            self.preset.setCurrentText(stored.get("preset", "Custom"))
        else:
            self._apply_preset(self.preset.currentText() if self.preset.currentText() != "Custom" else "Standard")
        self._update_state()

    def _apply_preset(self, name: str) -> None:
        choice = self.current_method()
        if choice is None or name not in PRESETS or self._applying:
            return
        values = choice.preset(name)
        self._set_values(values)
        self.params.set_values({**choice.params, **values["params"]})
        self.preset.blockSignals(True)
        self.preset.setCurrentText(name)
        self.preset.blockSignals(False)

    def _set_values(self, values: dict) -> None:
        self._applying = True
        try:
            index = self.image_size.findData(int(values.get("image_size", 64)))
            self.image_size.setCurrentIndex(max(index, 0))
            self.epochs.setValue(int(values.get("epochs", 15)))
            self.batch_size.setValue(int(values.get("batch_size", 32)))
        finally:
            self._applying = False

    def _mark_custom(self) -> None:
        if not self._applying:
            self.preset.blockSignals(True)
            self.preset.setCurrentText("Custom")
            self.preset.blockSignals(False)

    def _update_state(self) -> None:
        dataset = self.session.dataset
        running = self.job is not None and self.job.running
        choice = self.current_method()
        if dataset is None:
            self.data_label.setText("No data: open a folder on the Data page first (Ctrl+O).")
        else:
            self.data_label.setText(f"<b>{len(dataset.train)}</b> good training images in <b>{dataset.name}</b>")
            if choice is not None:
                self.name.setPlaceholderText(f"{dataset.name}-{choice.name}".replace(" ", "_")[:64])
        predictor, exported = self.session.predictor, self.session.exported
        can_finetune = predictor is not None and exported is None and choice is not None and predictor.info.method == choice.name
        self.finetune.setEnabled(can_finetune and not running)
        if exported is not None:
            tip = (f"Not possible from an exported model (it has no training weights): load {exported.export.get('source') or 'the trained model'}"
                   " from the registry to fine-tune it")
        elif predictor is not None:
            tip = f"Start from the weights of {predictor.info.ref} (it becomes the parent version)"
        else:
            tip = "Load a model of this method first"
        self.finetune.setToolTip(tip)
        self.finetune.setText("Fine-tune the loaded model" + (" (not from an exported model: no training weights)" if exported is not None else ""))
        if not can_finetune:
            self.finetune.setChecked(False)
        self.start_button.setEnabled(dataset is not None and choice is not None and choice.available and not running)
        self.advise_button.setEnabled(dataset is not None and not running and not (self.advice_job is not None and self.advice_job.running))
        self.cancel_button.setEnabled(running)

    # --- the form as a TrainConfig -----------------------------------------------------------
    def form_values(self) -> dict:
        return {
            "image_size": self.image_size.currentData(),
            "channels": self.channels.currentData(),
            "epochs": self.epochs.value(),
            "batch_size": self.batch_size.value(),
            "lr": self.lr.value(),
            "preset": self.preset.currentText(),
            "params": self.params.values(),
        }

    def set_form(self, image_size=None, epochs=None, batch_size=None, params=None, name=None) -> None:
        """Set some fields as a user would (used by the demo and by tests)."""
        if image_size is not None:
            self.image_size.setCurrentIndex(self.image_size.findData(int(image_size)))
        if epochs is not None:
            self.epochs.setValue(int(epochs))
        if batch_size is not None:
            self.batch_size.setValue(int(batch_size))
        if params:
            self.params.set_values(params)
        if name is not None:
            self.name.setText(name)

    def train_config(self):
        from inspector.engine.trainer import TrainConfig

        choice = self.current_method()
        params = dict(self.params.values())
        defaults = choice.defaults
        if self.lr.value() != defaults.get("lr"):
            params["lr"] = self.lr.value()
        return TrainConfig(
            method=choice.name,
            image_size=self.image_size.currentData(),
            channels=self.channels.currentData(),
            epochs=self.epochs.value(),
            batch_size=self.batch_size.value(),
            seed=self.seed.value(),
            device=self.device.currentData() or "auto",
            augment=self.augment.isChecked(),
            align=self.align.isChecked(),
            bf16=self.bf16.isChecked(),
            tile=self.tile.value() or None,
            threshold_mode=self.threshold_mode.currentData(),
            false_alarm_rate=self.false_alarm.value() / 100,
            params=params,
        )

    # --- running ------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.job is not None and self.job.running

    def start(self) -> Job | None:
        if self.is_running():
            return self.job
        dataset = self.session.dataset
        choice = self.current_method()
        if dataset is None:
            self.session.error.emit("Open a folder of good images first (Data page, Ctrl+O).")
            return None
        if choice is None or not choice.available:
            self.session.error.emit("Pick a method that is available.")
            return None
        from inspector.engine.modelref import check_name
        from inspector.engine.workflow import default_model_name, train_dataset

        try:
            config = self.train_config()
            name = self.name.text().strip() or default_model_name(choice.name, dataset)
            check_name(name)
        except ValueError as e:
            self.session.error.emit(f"Cannot start training: {e}")
            return None
        init_from = self.session.predictor.bundle if self.finetune.isChecked() and self.session.predictor else None
        registry = self.session.registry()
        resume = self.resume.isChecked()
        self.settings.set("train/method", choice.name)
        self.settings.set_train_form(choice.name, self.form_values())

        def work(report, cancel):
            from inspector.engine.predictor import Predictor

            entry = train_dataset(dataset, config, registry, name, on_event=report, cancel=cancel, init_from=init_from, resume=resume)
            return entry, Predictor.open(entry.path, device=config.device, registry=registry)

        self.view.begin(len(dataset.train))
        self.job = Job(f"Training {name}", work, parent=self)
        self.job.progress.connect(self._on_event)
        self.job.succeeded.connect(self._on_succeeded)
        self.job.cancelled.connect(self._on_cancelled)
        self.job.failed.connect(self._on_failed)
        self.job.finished.connect(self._on_finished)
        self.job.start()
        self._plot_timer.start()
        self._update_state()
        self.trainingStarted.emit()
        return self.job

    def advise(self) -> Job | None:
        """``inspector advise`` on the open folder in the background; the answer in a dialog whose
        *Use* button puts the recommended method on the form."""
        dataset = self.session.dataset
        if dataset is None or self.is_running() or (self.advice_job is not None and self.advice_job.running):
            return self.advice_job
        device = self.device.currentData() or "auto"

        def work(report, cancel):
            from inspector.engine.advise import advise

            return advise(dataset, device=device, on_progress=report, cancel=cancel)

        self.advice_job = Job(f"Comparing methods on {dataset.name}", work, parent=self)
        self.advice_job.progress.connect(lambda p: self.view.status.setText(f"Advisor: {p.message}…"))
        self.advice_job.succeeded.connect(self._advised)
        self.advice_job.failed.connect(lambda message: self.session.error.emit(f"The advisor failed: {message}"))
        self.advice_job.finished.connect(self._update_state)
        self.advice_job.start()
        self._update_state()
        return self.advice_job

    def _advised(self, advice) -> None:
        from inspector.gui.widgets.advice_dialog import AdviceDialog

        self.advice = advice
        self.view.status.setText(f"Advisor: {advice.reason}.")
        if advice.recommended and (not self.confirm_dialogs or AdviceDialog(advice, self).exec()):
            self.select_method(advice.recommended)

    def cancel(self) -> None:
        if self.is_running():
            self.job.cancel()
            self.view.cancelling()
            self.cancel_button.setEnabled(False)

    def _on_event(self, event) -> None:
        from inspector.engine.events import TrainProgress
        from inspector.engine.trainer import ImagesSkipped, SampleReconstructions, TrainNotice

        if isinstance(event, TrainProgress):
            self.view.show_progress(event)
        elif isinstance(event, SampleReconstructions):
            self.view.show_samples(event)
        elif isinstance(event, TrainNotice):  # resumed from a checkpoint, or one was not usable
            (self.session.info if event.kind == "resumed" else self.session.error).emit(event.message[:1].upper() + event.message[1:] + ".")
        elif isinstance(event, ImagesSkipped):
            self.session.add_unreadable({p: r for p, r in event.report.failed})
            self.session.error.emit(f"{len(event.report.failed)} unreadable image(s) were left out of training (see the Data page).")

    def _on_succeeded(self, result) -> None:
        entry, predictor = result
        self.view.succeeded(entry.info)
        self.session.set_predictor(predictor)
        self.session.registryChanged.emit()
        self.session.info.emit(f"Training finished: {entry.info.ref} is in the registry and loaded.")
        self.trainingFinished.emit(entry)

    def _on_cancelled(self) -> None:
        self.view.cancelled()
        self.trainingCancelled.emit()

    def _on_failed(self, message: str) -> None:
        self.view.failed(message)
        self.session.error.emit(f"Training failed: {message}")
        self.trainingFailed.emit(message)

    def _on_finished(self) -> None:
        self._plot_timer.stop()
        self.view.redraw()
        self._update_state()
        self.trainingEnded.emit()


def _group(title: str, *contents) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    for item in contents:
        if isinstance(item, QWidget):
            layout.addWidget(item)
        else:
            layout.addLayout(item)
    return box
