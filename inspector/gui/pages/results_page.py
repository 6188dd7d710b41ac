"""Results: every image of the open folder with its score and decision (sort, filter, step
through with the keyboard); the selected image as original | reconstruction | heat map and
overlay, scored through the core's Predictor in a worker. "Score all" scores the folder."""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from inspector.data.datasets import DEFECT, GOOD
from inspector.data.images import IMAGE_EXTENSIONS, ImageReadError, read_image
from inspector.engine.decision import NG, OK
from inspector.gui.settings import Settings
from inspector.gui.widgets.decision import decision_color
from inspector.gui.widgets.filter_proxy import KeyFilterProxy
from inspector.gui.widgets.job_progress import JobProgress
from inspector.gui.widgets.prediction_view import PredictionView
from inspector.gui.workers import Job, run_job

COLUMNS = ("File", "Split", "Label", "Score", "Decision")
SCORE_COLUMN, DECISION_COLUMN = 3, 4
SortRole = Qt.ItemDataRole.UserRole + 10
FILTERS = {
    "all": "All images",
    NG: "NG only",
    OK: "OK only",
    "unscored": "Not scored yet",
    "defect": "Labelled defect",
    "good": "Labelled good",
    "test": "Test split",
}
CACHE = 24


class ResultsModel(QAbstractTableModel):
    """Rows: the session's samples; scores and decisions read live from the session."""

    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.rows: list = []
        self.split: list[str] = []
        self.row_of: dict[Path, int] = {}

    def reset(self) -> None:
        self.beginResetModel()
        dataset = self.session.dataset
        self.rows = self.session.samples()
        n_train = len(dataset.train) if dataset else 0
        self.split = ["train"] * n_train + ["test"] * (len(self.rows) - n_train)
        self.row_of = {s.path: i for i, s in enumerate(self.rows)}
        self.endResetModel()

    def refresh_scores(self) -> None:
        if self.rows:
            self.dataChanged.emit(self.index(0, SCORE_COLUMN), self.index(len(self.rows) - 1, DECISION_COLUMN))

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def sample(self, row: int):
        return self.rows[row]

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        sample = self.rows[index.row()]
        col = index.column()
        score = self.session.scores.get(sample.path)
        error = self.session.unreadable.get(sample.path)
        decision = self.session.decision(score, sample.path)
        if role in (Qt.ItemDataRole.DisplayRole, SortRole):
            if col == 0:
                return sample.path.name
            if col == 1:
                return self.split[index.row()]
            if col == 2:
                return sample.defect_type
            if col == SCORE_COLUMN:
                if role == SortRole:
                    return score if score is not None else -math.inf
                return f"{score:.5g}" if score is not None else ("unreadable" if error else "")
            if col == DECISION_COLUMN:
                return decision
        if role == Qt.ItemDataRole.ForegroundRole and col == DECISION_COLUMN:
            return decision_color(decision)
        if role == Qt.ItemDataRole.FontRole and col == DECISION_COLUMN:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (SCORE_COLUMN, DECISION_COLUMN):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter) if col == SCORE_COLUMN else int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{sample.path}" + (f"\nunreadable: {error}" if error else "")
        return None


class ResultsFilter(KeyFilterProxy):
    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.setSortRole(SortRole)

    def accepts(self, row: int, parent) -> bool:
        model: ResultsModel = self.sourceModel()
        sample = model.sample(row)
        score = self.session.scores.get(sample.path)
        if self.key in (OK, NG):
            return self.session.decision(score, sample.path) == self.key
        if self.key == "unscored":
            return score is None
        if self.key == "defect":
            return sample.label == DEFECT
        if self.key == "good":
            return sample.label == GOOD
        if self.key == "test":
            return model.split[row] == "test"
        return True


class ResultsPage(QWidget):
    predictionShown = Signal(object)  # the Prediction now on screen

    def __init__(self, session, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self.cache: OrderedDict[Path, object] = OrderedDict()
        self.current: Path | None = None
        self._pending: Path | None = None
        self._predicting: Job | None = None
        self.score_job: Job | None = None
        self._cache_model = None
        self._cache_rules = None  # the region rules the cached predictions were made with
        self._score_model = None

        self.model = ResultsModel(session, self)
        self.proxy = ResultsFilter(session, self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.selectionModel().currentRowChanged.connect(self._on_current)

        self.filter = QComboBox()
        for key, text in FILTERS.items():
            self.filter.addItem(text, key)
        self.filter.currentIndexChanged.connect(self._on_filter)
        self.sort = QComboBox()
        self.sort.addItems(["Sort by file name", "Highest score first", "Lowest score first"])
        self.sort.currentIndexChanged.connect(self._on_sort)
        self.score_button = QPushButton("Score all")
        self.score_button.setToolTip("Score every image of the folder (Ctrl+R)")
        self.score_button.clicked.connect(self.score_all)
        self.job_progress = JobProgress()
        self.summary = QLabel()
        self.open_button = QPushButton("Open image…")
        self.open_button.setToolTip("Score any image file (or drop one on the views)")
        self.open_button.clicked.connect(self.choose_image)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        row1 = QHBoxLayout()
        row1.addWidget(self.score_button)
        row1.addWidget(self.open_button)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        row2.addWidget(self.filter, 1)
        row2.addWidget(self.sort, 1)
        ll.addLayout(row1)
        ll.addWidget(self.job_progress)
        ll.addLayout(row2)
        ll.addWidget(self.table, 1)
        ll.addWidget(self.summary)

        self.view = PredictionView(settings.opacity)
        self.view.opacityChanged.connect(lambda v: setattr(self.settings, "opacity", v))
        self.view.filesDropped.connect(lambda paths: self.show_file(paths[0]))

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("resultsSplitter")
        splitter.addWidget(left)
        splitter.addWidget(self.view)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([380, 800])
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        session.datasetChanged.connect(self._on_dataset)
        session.modelChanged.connect(self._on_model)
        session.scoresChanged.connect(self._on_scores)
        session.thresholdChanged.connect(self._on_threshold)
        self._on_dataset()

    # --- navigation ---------------------------------------------------------------------------
    def select_path(self, path: Path) -> bool:
        row = self.model.row_of.get(Path(path))
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():  # filtered out: show everything
            self.filter.setCurrentIndex(0)
            index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.scrollTo(index)
        return True

    def step(self, delta: int) -> None:
        """Next (+1) or previous (-1) image in the table's current order."""
        n = self.proxy.rowCount()
        if not n:
            return
        current = self.table.currentIndex()
        row = 0 if not current.isValid() else min(max(current.row() + delta, 0), n - 1)
        index = self.proxy.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.scrollTo(index)

    def _on_current(self, current: QModelIndex, previous: QModelIndex) -> None:
        if current.isValid():
            sample = self.model.sample(self.proxy.mapToSource(current).row())
            self.show_file(sample.path)

    def choose_image(self) -> None:
        patterns = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
        file, _ = QFileDialog.getOpenFileName(self, "Score an image", self.settings.last_folder, f"Images ({patterns})")
        if file:
            self.show_file(Path(file))

    # --- one image ----------------------------------------------------------------------------
    def show_file(self, path: Path) -> None:
        """Show an image; scored in a worker (the newest request wins when keys are held down)."""
        self.current = Path(path)
        cached = self.cache.get(self.current)
        if cached is not None:
            self._display(self.current, cached)
            return
        self._pending = self.current
        if self._predicting is None:
            self._predict_next()

    def _predict_next(self) -> None:
        path, self._pending = self._pending, None
        if path is None:
            return
        predictor = self.session.predictor

        def work(report, cancel):
            image = read_image(path)
            return path, predictor, (predictor.predict(image, path) if predictor is not None else image)

        job = Job(f"Scoring {path.name}", work, parent=self)
        job.quiet = True
        job.succeeded.connect(self._on_predicted)
        job.failed.connect(lambda message: self._on_unreadable(path, message))
        job.finished.connect(self._on_predict_finished)
        self._predicting = job.start()

    def _on_predict_finished(self) -> None:
        self._predicting = None
        self._predict_next()

    def _on_predicted(self, result) -> None:
        path, predictor, value = result
        if predictor is None:
            if path == self.current:
                self.view.show_original(value, "No model loaded: load one on the Models page or train one (Ctrl+T).")
            return
        if (self.session.predictor is None or predictor.model is not self.session.predictor.model
                or predictor.info.rules != self.session.rules):
            if path == self.current:  # scored by a model that is gone: score again
                self.show_file(path)
            return
        self.cache[path] = value
        while len(self.cache) > CACHE:
            self.cache.popitem(last=False)
        if path in self.model.row_of and self.session.rules is not None and path not in self.session.region_areas:
            self.session.add_scores({path: value.score}, {path: value.region_entry})
        elif path in self.model.row_of and self.session.scores.get(path) != value.score:
            self.session.add_scores({path: value.score})
        if path == self.current:
            self._display(path, value)

    def _on_unreadable(self, path: Path, message: str) -> None:
        if path in self.model.row_of:
            self.session.add_unreadable({path: message})
        if path == self.current:
            self.view.show_original(None, f"<b>Cannot read {path.name}</b>: {message}")

    def _display(self, path: Path, prediction) -> None:
        sample = self.model.rows[self.model.row_of[path]] if path in self.model.row_of else None
        details = str(path)
        if sample is not None:
            details = f"{path.name} · labelled {sample.defect_type} · {self.model.split[self.model.row_of[path]]} split"
        self.view.set_prediction(prediction, self.session.threshold, details)
        self.predictionShown.emit(prediction)

    # --- the whole folder ---------------------------------------------------------------------
    def score_all(self) -> Job | None:
        if self.score_job is not None and self.score_job.running:
            return self.score_job
        predictor = self.session.predictor
        if predictor is None or self.session.dataset is None:
            self.session.error.emit("Open a folder and load or train a model to score it.")
            return None
        need_regions = predictor.info.rules is not None
        paths = [s.path for s in self.model.rows
                 if s.path not in self.session.scores or (need_regions and s.path not in self.session.region_areas)]
        if not paths:
            self.session.info.emit("Every image is scored already.")
            return None

        with_rules = predictor.info.rules is not None

        def work(report, cancel):
            chunk, regions, failed = {}, {}, {}
            for path, result in predictor.predict_paths(paths, batch_size=16, cancel=cancel, progress=report):
                if isinstance(result, ImageReadError):
                    failed[path] = result.reason
                else:
                    chunk[path] = result.score
                    if with_rules:  # the rules need the regions: found here, off the GUI thread
                        regions[path] = result.region_entry
                if len(chunk) >= 32:
                    report(("scores", chunk, regions))
                    chunk, regions = {}, {}
            report(("scores", chunk, regions))
            return failed

        self._score_model = predictor.model
        self.score_button.setEnabled(False)
        self.score_job = run_job(f"Scoring {len(paths)} images", work, parent=self)
        self.job_progress.watch(self.score_job, len(paths))
        self.score_job.progress.connect(self._on_score_progress)
        self.score_job.succeeded.connect(self._on_scored)
        self.score_job.failed.connect(lambda m: self.session.error.emit(f"Scoring failed: {m}"))
        self.score_job.finished.connect(self._on_score_finished)
        return self.score_job

    def cancel(self) -> None:
        if self.score_job is not None:
            self.score_job.cancel()

    def _on_score_progress(self, event) -> None:
        if isinstance(event, tuple) and event[0] == "scores":
            if self.session.predictor is not None and self.session.predictor.model is self._score_model:
                self.session.add_scores(event[1], event[2])

    def _on_scored(self, failed: dict) -> None:
        if failed:
            self.session.add_unreadable(failed)
            self.session.error.emit(f"{len(failed)} image(s) could not be read and were skipped (see the Data page).")

    def _on_score_finished(self) -> None:
        self.score_button.setEnabled(self.session.predictor is not None)
        self.score_job = None
        self._update_summary()

    # --- session updates ----------------------------------------------------------------------
    def _on_dataset(self) -> None:
        self.cancel()
        self.cache.clear()
        self.model.reset()
        self.current = None
        self.view.clear("Select an image on the left." if self.session.dataset else "Open a folder on the Data page (Ctrl+O).")
        self.view.original.set_image(None)
        self._update_summary()

    def _on_model(self) -> None:
        model = self.session.predictor.model if self.session.predictor is not None else None
        rules = self.session.rules
        if model is not self._cache_model or rules != self._cache_rules:  # a new threshold alone keeps the scores
            self.cache.clear()
            self._cache_model, self._cache_rules = model, rules
            self.cancel()
        self.score_button.setEnabled(self.session.predictor is not None)
        if self.current is not None:
            self.show_file(self.current)
        self._update_summary()

    def _on_scores(self) -> None:
        self.model.refresh_scores()
        if self.proxy.key != "all":
            self.proxy.refilter()
        self._update_summary()

    def _on_threshold(self, value: float) -> None:
        self.model.refresh_scores()
        if self.proxy.key in (OK, NG):
            self.proxy.refilter()
        self.view.set_threshold(value)
        self._update_summary()

    def _on_filter(self) -> None:
        self.proxy.set_key(self.filter.currentData())
        self._update_summary()

    def _on_sort(self, index: int) -> None:
        if index == 0:
            self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        else:
            self.table.sortByColumn(SCORE_COLUMN, Qt.SortOrder.DescendingOrder if index == 1 else Qt.SortOrder.AscendingOrder)

    def _update_summary(self) -> None:
        n = len(self.model.rows)
        scored = [(s.path, self.session.scores[s.path]) for s in self.model.rows if s.path in self.session.scores]
        ng = sum(self.session.decision(score, path) == NG for path, score in scored)
        shown = self.proxy.rowCount()
        if not n:
            self.summary.setText("")
        elif not scored:
            self.summary.setText(f"{n} images · none scored yet" + (f" · {shown} shown" if shown != n else ""))
        else:
            self.summary.setText(f"{n} images · {len(scored)} scored · <b>{ng} NG</b>" + (f" · {shown} shown" if shown != n else ""))
