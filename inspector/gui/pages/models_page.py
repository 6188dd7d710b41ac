"""Models: the registry — method, created, data, metrics, threshold, version lineage; load,
rename, delete (with confirmation), export and import model files, and compare two models
side by side on the same data. An exported model (a folder ``inspector export`` wrote, outside
the registry) opens from here too, its export summary and stored parity in the details. The
details are widgets/model_details.py, the comparison view widgets/model_compare.py."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStyle,
    QTabWidget,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.engine.exported import META_FILE, is_exported
from inspector.engine.modelref import ModelRef, ModelRefError
from inspector.gui.settings import Settings
from inspector.gui.widgets.job_progress import JobProgress
from inspector.gui.widgets.model_compare import CompareView, compare_models
from inspector.gui.widgets.model_details import exported_html, local_time, model_html, quality
from inspector.gui.workers import Job, run_job

COLUMNS = ("Model", "Method", "Created", "Data", "Threshold", "Quality", "Parent")
EntryRole = Qt.ItemDataRole.UserRole + 1


def _model_name(ref: str) -> str | None:
    """The model name of a saved ``name`` / ``name@vN`` (None for a model file's path)."""
    try:
        return ModelRef.parse(ref).name
    except ModelRefError:
        return None


def _list_registry(session, report=None, cancel=None) -> tuple[list[tuple[str, list]], list]:
    """Every model with its readable versions, and the files that cannot be read."""
    registry = session.registry()  # in the worker: the registry module loads torch
    return [(name, registry.versions(name)) for name in registry.names()], registry.broken()


class ModelsPage(QWidget):
    modelLoaded = Signal(str)
    refreshed = Signal()
    compared = Signal(object)

    def __init__(self, session, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self.list_job: Job | None = None
        self.compare_job: Job | None = None
        self._refresh_again = False

        self.buttons = {}
        bar = QHBoxLayout()
        for key, text, tip, slot in (
            ("load", "Load", "Use the selected model for results and evaluation (Enter)", self.load_selected),
            ("compare", "Compare", "Score two selected models on the open folder, side by side", self.compare_selected),
            ("rename", "Rename…", "Rename the selected model (all its versions)", self.rename_selected),
            ("delete", "Delete…", "Delete the selected version, or the whole model (Del)", self.delete_selected),
            ("export", "Export…", "Save the selected model file elsewhere", self.export_selected),
            ("import", "Import…", "Add a model file to the registry", self.import_file),
            ("exported", "Open exported…", "Open a folder inspector export wrote (ONNX or OpenVINO, scored without torch; read-only)",
             self.open_exported),
            ("refresh", "Refresh", "Read the registry again (F5)", self.refresh),
        ):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            self.buttons[key] = button
            bar.addWidget(button)
            if key == "compare":
                bar.addSpacing(12)
        bar.addStretch(1)
        self.where = QLabel()
        self.where.setObjectName("hint")
        bar.addWidget(self.where)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.setAlternatingRowColors(True)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setStretchLastSection(True)
        self.tree.itemSelectionChanged.connect(self._on_selection)
        self.tree.itemActivated.connect(lambda item, col: self.load_selected())
        self.empty = QLabel()

        self.details = QTextBrowser()
        self.details.setOpenExternalLinks(False)
        self.compare_view = CompareView()
        self.compare_progress = JobProgress()
        compare_box = QWidget()
        cl = QVBoxLayout(compare_box)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.compare_progress)
        cl.addWidget(self.compare_view, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.details, "Details")
        self.tabs.addTab(compare_box, "Compare")

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("modelsSplitter")
        splitter.addWidget(self.tree)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(splitter, 1)

        session.registryChanged.connect(self.refresh)
        session.modelChanged.connect(self._on_model)
        self._on_selection()

    # --- listing ------------------------------------------------------------------------------
    def refresh(self) -> Job | None:
        if self.list_job is not None and self.list_job.running:
            self._refresh_again = True
            return self.list_job
        from inspector.engine import paths

        self.where.setText(f"Registry: {paths.models_dir()}")
        self.list_job = run_job("Reading the model registry", _list_registry, self.session, parent=self)
        self.list_job.succeeded.connect(self._fill)
        self.list_job.failed.connect(lambda m: self.session.error.emit(f"Cannot read the model registry: {m}"))
        self.list_job.finished.connect(self._on_list_finished)
        return self.list_job

    def _on_list_finished(self) -> None:
        if self._refresh_again:
            self._refresh_again = False
            self.refresh()

    def _fill(self, listing: tuple[list, list]) -> None:
        models, broken = listing
        if broken:
            shown = "; ".join(b.error for b in broken[:3]) + (f"; and {len(broken) - 3} more" if len(broken) > 3 else "")
            self.session.error.emit(f"{len(broken)} model file(s) in the registry cannot be read and are not listed: {shown}")
        selected = {e.path for e in self.selected_entries()}
        self.tree.clear()
        for name, versions in models:
            if not versions:
                continue
            latest = versions[-1]
            top = QTreeWidgetItem(self._columns(latest, f"{name}  (v{latest.version}, {len(versions)} version{'s' if len(versions) > 1 else ''})"))
            top.setData(0, EntryRole, latest)
            top.setData(0, Qt.ItemDataRole.UserRole, name)
            for entry in reversed(versions):
                child = QTreeWidgetItem(self._columns(entry, f"v{entry.version}"))
                child.setData(0, EntryRole, entry)
                top.addChild(child)
                if entry.path in selected:
                    child.setSelected(True)
            self.tree.addTopLevelItem(top)
            if latest.path in selected:
                top.setSelected(True)
        self.tree.expandAll()
        self._mark_loaded()
        self._on_selection()
        if not models:
            self.details.setHtml("<h3>No models yet</h3><p>Train one on the Train page (Ctrl+T), or import a model file.</p>")
        self.refreshed.emit()

    @staticmethod
    def _columns(entry, first: str) -> list[str]:
        info = entry.info
        t = info.threshold
        return [
            first,
            info.method,
            local_time(info.created),
            str(info.training.get("dataset") or "–"),
            f"{t.value:.4g} ({t.method})",
            quality(info),
            info.parent or "",
        ]

    def _on_model(self) -> None:
        self._mark_loaded()
        exported = self.session.exported
        if exported is not None:
            self.tree.clearSelection()
            self.details.setHtml(exported_html(exported, self.session.predictor.runtime))
            self.tabs.setCurrentIndex(0)

    def _mark_loaded(self) -> None:
        # an export carries the ref it came from: that registry version is not what is loaded
        loaded = self.session.predictor.info.ref if self.session.predictor is not None and self.session.exported is None else None
        icon = self.style().standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton)
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                child = top.child(j)
                is_loaded = child.data(0, EntryRole).info.ref == loaded
                font = child.font(0)
                font.setBold(is_loaded)
                child.setFont(0, font)
                child.setIcon(0, icon if is_loaded else QIcon())
                child.setToolTip(0, "loaded" if is_loaded else "")

    # --- selection ----------------------------------------------------------------------------
    def selected_entries(self) -> list:
        return [item.data(0, EntryRole) for item in self.tree.selectedItems() if item.data(0, EntryRole) is not None]

    def select(self, ref: str) -> bool:
        """Select a version (``name@vN``) or a whole model (``name``)."""
        self.tree.clearSelection()
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            if top.data(0, Qt.ItemDataRole.UserRole) == ref:
                top.setSelected(True)
                self.tree.setCurrentItem(top)
                return True
            for j in range(top.childCount()):
                child = top.child(j)
                if child.data(0, EntryRole).info.ref == ref:
                    child.setSelected(True)
                    self.tree.setCurrentItem(child)
                    return True
        return False

    def _on_selection(self) -> None:
        entries = self.selected_entries()
        one = len(entries) == 1
        self.buttons["load"].setEnabled(one)
        self.buttons["rename"].setEnabled(one)
        self.buttons["delete"].setEnabled(one)
        self.buttons["export"].setEnabled(one)
        self.buttons["compare"].setEnabled(len(entries) == 2 and self.session.dataset is not None)
        self.buttons["compare"].setToolTip(
            "Score two selected models on the open folder, side by side"
            + ("" if self.session.dataset is not None else " (open a folder first)")
        )
        if one:
            self.details.setHtml(self._details_html(entries[0]))

    def _details_html(self, entry) -> str:
        parents = {}
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                other = top.child(j).data(0, EntryRole).info
                parents[other.ref] = other.parent
        return model_html(entry, parents)

    # --- actions ------------------------------------------------------------------------------
    def load_selected(self) -> Job | None:
        entries = self.selected_entries()
        if len(entries) != 1:
            return None
        ref = entries[0].info.ref
        job = self.session.load_model(ref)
        job.succeeded.connect(lambda _: self._loaded(ref))
        return job

    def _loaded(self, ref: str) -> None:
        self.settings.last_model = ref
        self.session.info.emit(f"Loaded {ref}.")
        self.modelLoaded.emit(ref)

    def open_exported(self, folder: str | None = None) -> Job | None:
        """Load an exported model's folder: it scores on the Results, Evaluate and Live pages."""
        if not folder:
            folder = QFileDialog.getExistingDirectory(self, "Open an exported model (the folder inspector export wrote)",
                                                      self.settings.last_folder)
        if not folder:
            return None
        if not is_exported(folder):
            self.session.error.emit(f"{folder} is not an exported model (it has no {META_FILE}): write one with inspector export MODEL DEST")
            return None
        job = self.session.load_model(folder)
        job.succeeded.connect(lambda _: self._loaded(str(folder)))
        return job

    def rename_selected(self) -> Job | None:
        entries = self.selected_entries()
        if len(entries) != 1:
            return None
        old = entries[0].name
        new, ok = QInputDialog.getText(self, "Rename model", f"New name for '{old}' (all its versions):", text=old)
        new = new.strip()
        if not ok or not new or new == old:
            return None
        registry = self.session.registry()
        job = run_job(f"Renaming {old}", lambda report, cancel: registry.rename(old, new), parent=self)

        def done(_):
            predictor = self.session.predictor
            if predictor is not None and self.session.exported is None and predictor.info.name == old:
                predictor.info.name = new  # the files now say so too
                self.session.modelChanged.emit()
            if _model_name(self.settings.last_model) == old:
                self.settings.last_model = new
            self.session.info.emit(f"Renamed '{old}' to '{new}'.")
            self.session.registryChanged.emit()

        job.succeeded.connect(done)
        job.failed.connect(lambda m: self.session.error.emit(f"Could not rename '{old}': {m}"))
        return job

    def delete_selected(self) -> int:
        item = self.tree.currentItem() if self.tree.currentItem() in self.tree.selectedItems() else None
        if item is None:
            items = self.tree.selectedItems()
            item = items[0] if len(items) == 1 else None
        if item is None:
            return 0
        entry = item.data(0, EntryRole)
        whole = item.parent() is None
        what = f"the model '{entry.name}' and all its versions" if whole else f"version {entry.info.ref}"
        answer = QMessageBox.question(
            self,
            "Delete model",
            f"Delete {what}?\n\nThe model file(s) are removed from {entry.path.parent}; this cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return 0
        try:
            count = self.session.registry().delete(entry.name, None if whole else entry.version)
        except Exception as e:  # noqa: BLE001
            self.session.error.emit(f"Could not delete {what}: {e}")
            return 0
        self.session.info.emit(f"Deleted {count} model file(s) of '{entry.name}'.")
        self.session.registryChanged.emit()
        return count

    def export_selected(self) -> Path | None:
        entries = self.selected_entries()
        if len(entries) != 1:
            return None
        from inspector.engine.bundle import MODEL_SUFFIX  # here, not at import: the bundle module loads torch
        from inspector.engine.registry import export_file_name

        entry = entries[0]
        suggested = str(Path(self.settings.last_folder or Path.home()) / export_file_name(entry.info, entry.path))
        dest, _ = QFileDialog.getSaveFileName(self, "Export model file", suggested, f"Model files (*{MODEL_SUFFIX})")
        if not dest:
            return None
        asked = dest.endswith(MODEL_SUFFIX)  # the file dialog asked before replacing this very name
        dest = Path(dest) if asked else Path(dest + MODEL_SUFFIX)
        try:
            self.session.registry().export(entry.path, dest, overwrite=asked)
        except Exception as e:  # noqa: BLE001 — a full disk, a broken file: said in the message strip
            self.session.error.emit(f"Could not export to {dest}: {e}")
            return None
        self.session.info.emit(f"Exported {entry.info.ref} to {dest}.")
        return dest

    def import_file(self, path: str | None = None, name: str | None = None) -> Job | None:
        """Add a model file as a new model. An import never adds a version to an existing model
        (nor changes what it uses): on a name clash the user is asked for another name."""
        from inspector.engine.bundle import MODEL_SUFFIX, ModelFileError, read_info

        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Import a model file", self.settings.last_folder, f"Model files (*{MODEL_SUFFIX})")
        if not path:
            return None

        registry = self.session.registry()
        if name is None:
            try:
                name = read_info(path).name or Path(path).stem
            except ModelFileError as e:
                self.session.error.emit(f"Could not import: {e}")
                return None
            try:
                taken = registry.taken(name)
            except ValueError:  # the file's own name is not a valid model name
                taken = True
            if taken:
                name = self._ask_import_name(name, registry)
                if name is None:
                    return None

        job = run_job(f"Importing {Path(path).name}", lambda report, cancel: registry.import_file(path, name), parent=self)
        job.succeeded.connect(lambda entry: (self.session.info.emit(f"Imported as {entry.info.ref}."), self.session.registryChanged.emit()))
        job.failed.connect(lambda m: self.session.error.emit(f"Could not import {path}: {m}"))
        return job

    def _ask_import_name(self, taken: str, registry) -> str | None:
        """A free name for an imported file whose own name is taken (None: cancelled)."""
        from inspector.engine.modelref import name_from

        base = name_from(taken, 56)
        suggestion = next(f"{base}-import{i or ''}" for i in range(1000) if not registry.taken(f"{base}-import{i or ''}"))
        new, ok = QInputDialog.getText(
            self, "Import model file",
            f"A model named '{taken}' exists already; the import will not touch it.\nImport the file as:", text=suggestion,
        )
        return new.strip() if ok and new.strip() else None

    def compare_selected(self) -> Job | None:
        entries = self.selected_entries()
        if len(entries) != 2 or self.session.dataset is None:
            self.session.error.emit("Select exactly two models or versions (Ctrl+click), with a folder open.")
            return None
        if self.compare_job is not None and self.compare_job.running:
            return self.compare_job
        a, b = (e.info.ref for e in entries)
        self.tabs.setCurrentIndex(1)
        self.compare_view.title.setText(f"Scoring {self.session.dataset.name} with {a} and {b}…")
        job = run_job(f"Comparing {a} and {b}", compare_models, a, b, self.session.dataset, self.session.registry(), parent=self)
        self.compare_progress.watch(job)
        job.succeeded.connect(self._on_compared)
        job.failed.connect(lambda m: (self.compare_view.title.setText(f"Comparison failed: {m}"), self.session.error.emit(f"Comparison failed: {m}")))
        self.compare_job = job
        return job

    def _on_compared(self, results) -> None:
        self.compare_view.show_results(*results)
        self.compared.emit(results)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Delete:
            self.delete_selected()
        elif event.key() == Qt.Key.Key_F5:
            self.refresh()
        else:
            super().keyPressEvent(event)
