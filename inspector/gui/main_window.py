"""The main window: a page list on the left, the pages, a status bar; the menus and shortcuts
are made by ``menus``.

Every page is added with one call, :meth:`MainWindow.add_page` (which also gives it a View menu
entry and Ctrl+<n>). Closing the window asks before stopping a training or a live inspection,
then stops both cleanly.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QStackedWidget,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from inspector import __version__
from inspector.engine import paths
from inspector.engine.demo import DEMO_METHOD
from inspector.engine.events import Progress
from inspector.gui import menus
from inspector.gui.app import DISPLAY_NAME, apply_theme
from inspector.gui.methods import warm_up
from inspector.gui.pages.data_page import DataPage
from inspector.gui.pages.evaluate_page import EvaluatePage
from inspector.gui.pages.history_page import HistoryPage
from inspector.gui.pages.live.page import LivePage
from inspector.gui.pages.models_page import ModelsPage
from inspector.gui.pages.results_page import ResultsPage
from inspector.gui.pages.train_page import TrainPage
from inspector.gui.resources import app_icon
from inspector.gui.session import Session
from inspector.gui.settings import Settings
from inspector.gui.widgets.message_bar import MessageBar
from inspector.gui.workers import Job, active_jobs, cancel_all, run_job

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, session: Session | None = None) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.session = session or Session(self)
        self.confirm_close = True
        self.pages: dict[str, QWidget] = {}
        self.actions_: dict[str, QAction] = {}
        self.methods_ready = False
        self._after_methods: list = []
        self.warm_up_job: Job | None = None
        self.setWindowTitle(DISPLAY_NAME)
        self.setWindowIcon(app_icon())
        self.setObjectName("mainWindow")

        # --- page list and pages ---------------------------------------------------------
        self.nav = QListWidget()
        self.nav.setObjectName("nav")
        self.nav.setIconSize(QSize(22, 22))
        self.nav.setFixedWidth(150)
        self.nav.setFrameShape(QListWidget.Shape.NoFrame)
        self.nav.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.nav.currentRowChanged.connect(self._on_nav)
        self.stack = QStackedWidget()
        self.message_bar = MessageBar()
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(6, 6, 6, 0)
        rl.addWidget(self.message_bar)
        rl.addWidget(self.stack, 1)
        central = QWidget()
        cl = QHBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        cl.addWidget(self.nav)
        cl.addWidget(right, 1)
        self.setCentralWidget(central)
        self.pages_menu = QMenu("&View", self)  # the pages first, then what create_menus adds
        self._pages_end = self.pages_menu.addSeparator()

        s = self.style()
        self.data_page = DataPage(self.session, self.settings)
        self.train_page = TrainPage(self.session, self.settings)
        self.results_page = ResultsPage(self.session, self.settings)
        self.evaluate_page = EvaluatePage(self.session)
        self.models_page = ModelsPage(self.session, self.settings)
        self.live_page = LivePage(self.session, self.settings, messages=self.show_message)
        self.history_page = HistoryPage(open_store=self.live_page.controller.existing_store)
        self.add_page("data", "Data", self.data_page, s.standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon))
        self.add_page("train", "Train", self.train_page, s.standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self.add_page("results", "Results", self.results_page, s.standardIcon(QStyle.StandardPixmap.SP_FileDialogContentsView))
        self.add_page("evaluate", "Evaluate", self.evaluate_page, s.standardIcon(QStyle.StandardPixmap.SP_FileDialogDetailedView))
        self.add_page("models", "Models", self.models_page, s.standardIcon(QStyle.StandardPixmap.SP_DriveHDIcon))
        self.add_page("live", "Live", self.live_page, s.standardIcon(QStyle.StandardPixmap.SP_MediaSeekForward))
        self.add_page("history", "History", self.history_page, s.standardIcon(QStyle.StandardPixmap.SP_FileDialogListView))

        self.data_page.demoRequested.connect(lambda: self.start_demo(train=False))
        self.data_page.inspectRequested.connect(self.inspect)
        self.train_page.inspectRequested.connect(lambda: self.show_page("results"))
        self.train_page.evaluateRequested.connect(self.evaluate)
        self.train_page.trainingStarted.connect(self._update_actions)
        self.train_page.trainingEnded.connect(self._update_actions)  # Ctrl+T works again after a cancel or failure
        self.train_page.trainingFinished.connect(lambda entry: setattr(self.settings, "last_model", entry.info.ref))
        self.evaluate_page.thresholdSaved.connect(lambda entry: setattr(self.settings, "last_model", entry.info.ref))
        self.history_page.message.connect(self.show_message)
        self.history_page.feedbackGiven.connect(lambda *_: self.live_page.update_pool())

        menus.create_actions(self)
        menus.create_menus(self)
        self._create_status_bar()
        self.session.error.connect(self.show_error)
        self.session.info.connect(self.show_info)
        self.session.datasetChanged.connect(self._update_status)
        self.session.modelChanged.connect(self._update_status)
        self.session.thresholdChanged.connect(lambda _: self._update_status())
        self.session.modelChanged.connect(self._update_actions)
        self.session.datasetChanged.connect(self._update_actions)
        self._restore()
        self._update_status()
        self._update_actions()

    # --- pages --------------------------------------------------------------------------------
    def add_page(self, key: str, title: str, widget: QWidget, icon: QIcon | None = None, shortcut: str | None = None) -> QWidget:
        """Add a page to the list (and a View menu entry with Ctrl+<n> unless a shortcut is given)."""
        if key in self.pages:
            raise ValueError(f"a page named '{key}' exists already")
        self.pages[key] = widget
        widget.setObjectName(f"{key}Page")
        item = QListWidgetItem(icon or QIcon(), title)
        item.setData(Qt.ItemDataRole.UserRole, key)
        item.setSizeHint(QSize(140, 40))
        self.nav.addItem(item)
        self.stack.addWidget(widget)
        number = len(self.pages)
        action = QAction(icon or QIcon(), f"{title} page", self)
        action.setShortcut(QKeySequence(shortcut or (f"Ctrl+{number}" if number <= 9 else "")))
        action.triggered.connect(lambda: self.show_page(key))
        self.addAction(action)
        self.actions_[f"page_{key}"] = action
        self.pages_menu.insertAction(self._pages_end, action)
        if self.nav.currentRow() < 0:
            self.nav.setCurrentRow(0)
        return widget

    def show_page(self, key: str) -> None:
        widget = self.pages[key]
        self.nav.setCurrentRow(self.stack.indexOf(widget))

    def current_page(self) -> str:
        widget = self.stack.currentWidget()
        return next((k for k, w in self.pages.items() if w is widget), "")

    def _on_nav(self, row: int) -> None:
        if row >= 0:
            self.stack.setCurrentIndex(row)
            self._update_actions()

    def _update_actions(self) -> None:
        a = self.actions_
        if "add_images" not in a:
            return  # still building the window
        has_data = self.session.dataset is not None
        has_model = self.session.predictor is not None
        training = self.train_page.is_running()
        a["add_images"].setEnabled(has_data)
        a["train"].setEnabled(has_data and not training)
        a["score_all"].setEnabled(has_data and has_model)
        a["evaluate"].setEnabled(has_data and has_model)
        a["save_threshold"].setEnabled(has_model)

    # --- commands -----------------------------------------------------------------------------
    def train(self) -> Job | None:
        self.show_page("train")
        if not self.methods_ready:
            self.show_info("The methods are still loading; training starts as soon as they are ready.")
            self._after_methods.append(self.train_page.start)
            return None
        return self.train_page.start()

    def evaluate(self) -> Job | None:
        self.show_page("evaluate")
        return self.evaluate_page.evaluate()

    def score_all(self) -> Job | None:
        self.show_page("results")
        return self.results_page.score_all()

    def save_threshold(self):
        return self.evaluate_page.save_threshold()

    def step_image(self, delta: int) -> None:
        if self.current_page() not in ("results",):
            self.show_page("results")
        self.results_page.step(delta)

    def inspect(self, path: Path) -> None:
        self.show_page("results")
        self.results_page.select_path(path)

    def cancel_current(self) -> None:
        """Esc: cancel the job of the page in view (on the Live page, first leave a frame's review),
        else the training."""
        page = self.current_page()
        if page == "results" and self.results_page.score_job is not None:
            self.results_page.cancel()
        elif page == "evaluate" and self.evaluate_page.job is not None and self.evaluate_page.job.running:
            self.evaluate_page.cancel()
        elif page == "models" and self.models_page.compare_job is not None and self.models_page.compare_job.running:
            self.models_page.compare_job.cancel()
        elif page == "live" and self.live_page.escape():
            return  # it left the review of a frame, or cancelled the retraining
        elif self.train_page.is_running():
            self.train_page.cancel()
        else:
            self.message_bar.hide()

    def open_image(self) -> None:
        self.show_page("results")
        self.results_page.choose_image()

    def open_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model file", self.settings.last_folder, "Model files (*.inspector)")
        if path:
            job = self.session.load_model(path)
            job.succeeded.connect(lambda _: setattr(self.settings, "last_model", path))

    def set_theme(self, theme: str) -> None:
        self.settings.set("view/theme", theme)
        apply_theme(QApplication.instance(), theme)

    def toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    # --- start-up -----------------------------------------------------------------------------
    def start(self, data: str | None = None, model: str | None = None, demo: dict | None = None) -> None:
        """After the window is visible: load the methods (torch) in the background, list the
        registry, open the folder and model (given, or the last ones), or the demo project."""
        self.warm_up_job = run_job("Loading the methods", warm_up, parent=self)
        self.warm_up_job.succeeded.connect(self._on_methods)
        self.warm_up_job.failed.connect(lambda m: self.show_error(f"The training methods could not be loaded: {m}"))
        self.models_page.refresh()
        if demo is not None:
            self.start_demo(train=True, **demo)
            return
        folder = data or self.settings.last_folder
        if folder and (data or Path(folder).is_dir()):
            self.data_page.open_folder(folder)
        ref = model or self.settings.last_model
        if ref:
            job = self.session.load_model(ref)
            if not model:  # the last model may have been deleted since: a note, not an error
                job.failed.disconnect()
                job.failed.connect(lambda m: self.show_info(f"The last model ({ref}) could not be loaded: {m}"))
            job.succeeded.connect(lambda _: setattr(self.settings, "last_model", self._reopen_ref(ref)))

    def _reopen_ref(self, ref: str) -> str:
        """What opens the loaded model next time: its ``name@vN``, else (a model file without a
        name, an exported model's folder, which carries the ref it came from) what was opened."""
        info = self.session.predictor.info
        return info.ref if info.name and self.session.exported is None else str(ref)

    def _on_methods(self, result) -> None:
        choices, devices = result
        self.train_page.set_methods(choices, devices)
        self.methods_ready = True
        broken = [c for c in choices if not c.available]
        if broken:
            log.warning("methods that cannot be loaded: %s", "; ".join(f"{c.name}: {c.error}" for c in broken))
        pending, self._after_methods = self._after_methods, []
        for callback in pending:
            callback()

    def start_demo(self, train: bool = True, method: str = DEMO_METHOD, epochs: int | None = None) -> Job:
        """The ELPV demo project: prepare the data (first start only), open it, load or train its model."""
        from inspector.data.elpv import materialise_elpv
        from inspector.engine.demo import DEMO_MODEL, demo_data_dir

        folder = demo_data_dir()

        def prepare(report, cancel):
            dataset = materialise_elpv(folder, progress=lambda done, total: report(Progress(done, total, "preparing the ELPV demo data")))
            registry = self.session.registry()
            try:
                entry = registry.latest(DEMO_MODEL)
            except Exception:  # noqa: BLE001 — no demo model yet
                entry = None
            return dataset, entry

        self.show_page("data")
        self.show_info(f"Preparing the ELPV demo data in {folder} (copied once on the first start)…")
        job = run_job("Preparing the ELPV demo data", prepare, parent=self)

        def done(result) -> None:
            dataset, entry = result
            self.session.set_dataset(dataset)
            self.settings.last_folder = str(dataset.root)
            if entry is not None:
                def loaded(_) -> None:
                    self.settings.last_model = entry.info.ref
                    self._evaluate_demo()

                self.session.load_model(entry.info.ref).succeeded.connect(loaded)
                self.show_info(f"Demo project open: {dataset.name} with model {entry.info.ref}.")
            elif train:
                self.show_info(
                    f"Training the demo model '{DEMO_MODEL}' ({method}) in the background (first start only). "
                    "The window stays usable: look at the data meanwhile."
                )
                self._train_demo(method, epochs)
            else:
                self.show_info(f"Demo data open: {dataset.name}. Train a model on it with Ctrl+T.")

        job.progress.connect(lambda p: self._job_status(f"Preparing the ELPV demo data: {p.done} of {p.total}"))
        job.succeeded.connect(done)
        job.failed.connect(lambda m: self.show_error(f"Cannot open the demo data: {m}"))
        return job

    def _train_demo(self, method: str, epochs: int | None) -> None:
        from inspector.engine.demo import DEMO_MODEL, DEMO_PARAMS

        def trained(_entry) -> None:
            self.train_page.trainingFinished.disconnect(trained)
            self._evaluate_demo()

        def go() -> None:
            self.train_page.trainingFinished.connect(trained)
            self.train_page.select_method(method)
            self.train_page.set_form(epochs=epochs, params=DEMO_PARAMS.get(method), name=DEMO_MODEL)
            self.show_page("train")
            self.train_page.start()

        if self.methods_ready:
            go()
        else:
            self._after_methods.append(go)

    def _evaluate_demo(self) -> None:
        """The demo's model scores the test cells at once: the Results page filled, the Evaluate
        page with its confusion matrix, without a click."""
        self.evaluate()

    # --- status and messages ------------------------------------------------------------------
    def _create_status_bar(self) -> None:
        bar = self.statusBar()
        self.data_status = QLabel()
        self.model_status = QLabel()
        self.jobs_status = QLabel()
        self.jobs_bar = QProgressBar()
        self.jobs_bar.setRange(0, 0)
        self.jobs_bar.setMaximumWidth(90)
        self.jobs_bar.setMaximumHeight(14)
        self.jobs_bar.hide()
        for w in (self.jobs_status, self.jobs_bar, self.data_status, self.model_status):
            bar.addPermanentWidget(w)
        self._jobs_timer = QTimer(self, interval=400, timeout=self._update_jobs)
        self._jobs_timer.start()

    def _update_status(self) -> None:
        dataset = self.session.dataset
        self.data_status.setText(f"Data: {dataset.name} ({len(dataset.train)} + {len(dataset.test)} images)" if dataset else "No data")
        predictor = self.session.predictor
        if predictor is None:
            self.model_status.setText("No model")
            self.setWindowTitle(DISPLAY_NAME + (f" — {dataset.name}" if dataset else ""))
        else:
            changed = " (changed)" if self.session.threshold_modified else ""
            self.model_status.setText(f"Model: {self.session.model_label} · threshold {self.session.threshold:.4g}{changed}")
            self.setWindowTitle(f"{DISPLAY_NAME} — {dataset.name if dataset else 'no data'} — {self.session.model_label}")

    def _update_jobs(self) -> None:
        jobs = [j for j in active_jobs() if not j.quiet]
        if self.train_page.is_running():
            done = self.train_page.view.percent()
            percent = f" {done} %" if done is not None else ""
            self.jobs_status.setText(f"Training{percent}")
        elif jobs:
            self.jobs_status.setText(", ".join(j.title for j in jobs[:2]) + ("…" if len(jobs) > 2 else ""))
        else:
            self.jobs_status.setText("")
        self.jobs_bar.setVisible(bool(jobs))

    def _job_status(self, text: str) -> None:
        self.statusBar().showMessage(text, 3000)

    def show_error(self, text: str) -> None:
        log.error(text)
        self.message_bar.show_message(text, "error")
        self.statusBar().showMessage(text, 10000)

    def show_info(self, text: str) -> None:
        log.info(text)
        self.message_bar.show_message(text, "info")
        self.statusBar().showMessage(text, 6000)

    def show_message(self, text: str, level: str = "info") -> None:
        """A page's message in the window's strip (``level``: info, warning or error)."""
        self.show_error(text) if level == "error" else self.show_info(text)

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            f"About {DISPLAY_NAME}",
            f"<h3>{DISPLAY_NAME} {__version__}</h3><p>Visual inspection with GAN anomaly detection: train on good parts, "
            f"flag the rest, see where and how sure.</p><p>Models: {paths.models_dir()}<br>Log: {paths.log_dir()}</p>",
        )

    # --- persistence --------------------------------------------------------------------------
    def _restore(self) -> None:
        geometry = self.settings.get_bytes("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1280, 820)
        state = self.settings.get_bytes("window/state")
        if state is not None:
            self.restoreState(state)
        for splitter in self.findChildren(QSplitter):
            saved = self.settings.get_bytes(f"window/{splitter.objectName()}") if splitter.objectName() else None
            if saved is not None:
                splitter.restoreState(saved)
        page = self.settings.get("window/page", "data")
        if page in self.pages:
            self.show_page(page)

    def save_settings(self) -> None:
        self.settings.set("window/geometry", self.saveGeometry())
        self.settings.set("window/state", self.saveState())
        for splitter in self.findChildren(QSplitter):
            if splitter.objectName():
                self.settings.set(f"window/{splitter.objectName()}", splitter.saveState())
        self.settings.set("window/page", self.current_page())
        self.settings.opacity = self.results_page.view.opacity_value()
        self.settings.sync()

    def closeEvent(self, event) -> None:
        questions = (
            (self.live_page.is_running(), "Quit during live inspection?",
             "Live inspection is running. Stop it and quit? (Every result so far is saved.)"),
            (self.train_page.is_running(), "Quit while training?",
             "A training is running. Cancel it and quit? (The last finished epoch is kept as a checkpoint: "
             "training again with the same settings resumes from it.)"),
        )
        for running, title, text in questions:
            if self.confirm_close and running and QMessageBox.question(
                self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            ) != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.save_settings()
        self.live_page.shutdown()
        self.data_page.model.stop()
        if not cancel_all(wait_ms=15000):
            log.warning("some background jobs did not stop within 15 s")
        event.accept()
