"""The main window's actions, menus and keyboard shortcuts, and the F1 list of them.

Every command is a ``QAction`` added to the window itself, so its shortcut works wherever the
focus is; the menus only arrange them. Kept apart from ``main_window`` so that the window holds
what it does and this module how it is offered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QDialog, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout

from inspector.engine import paths
from inspector.gui.app import THEMES

if TYPE_CHECKING:
    from inspector.gui.main_window import MainWindow


def add_action(window: MainWindow, key: str, text: str, slot, shortcut: str | QKeySequence.StandardKey | list | None = None,
               tip: str = "") -> QAction:
    """A window-wide action under ``window.actions_[key]``."""
    action = QAction(text, window)
    if isinstance(shortcut, list):
        action.setShortcuts([QKeySequence(s) for s in shortcut])
    elif shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setStatusTip(tip)
    action.triggered.connect(slot)
    window.addAction(action)  # shortcuts work wherever the focus is
    window.actions_[key] = action
    return action


def create_actions(w: MainWindow) -> None:
    def A(*args, **kwargs) -> QAction:
        return add_action(w, *args, **kwargs)

    A("open_folder", "&Open folder…", w.data_page.choose_folder, "Ctrl+O", "Open a folder of camera images")
    A("open_demo", "Open the ELPV &demo data", lambda: w.start_demo(train=False), tip="Real solar-cell images")
    A("add_images", "&Add good images…", w.data_page.choose_images, "Ctrl+Shift+A", "Copy images into the good training set")
    A("open_image", "Score an &image file…", w.open_image, "Ctrl+I")
    A("open_model", "Open a &model file…", w.open_model_file, "Ctrl+Shift+O")
    A("open_exported", "Open an e&xported model…", w.models_page.open_exported, tip="A folder inspector export wrote (scored without torch)")
    A("quit", "&Quit", w.close, "Ctrl+Q")
    A("train", "&Train", w.train, "Ctrl+T", "Train a model on the good images of the open folder")
    A("cancel", "&Cancel the running job", w.cancel_current, "Esc")
    A("score_all", "&Score the whole folder", w.score_all, "Ctrl+R")
    A("evaluate", "&Evaluate", w.evaluate, "Ctrl+E")
    A("save_threshold", "Save &threshold to model", w.save_threshold, "Ctrl+S", "Write the threshold into a new model version")
    A("reset_threshold", "&Reset the threshold", w.session.reset_threshold, "Ctrl+Shift+R")
    A("next", "&Next image", lambda: w.step_image(1), ["N", "Ctrl+Down"])
    A("previous", "&Previous image", lambda: w.step_image(-1), ["P", "Ctrl+Up"])
    A("opacity_up", "More heat-map opacity", lambda: w.results_page.view.step_opacity(0.1), "]")
    A("opacity_down", "Less heat-map opacity", lambda: w.results_page.view.step_opacity(-0.1), "[")
    A("refresh_models", "Refresh the model list", w.models_page.refresh, "F5")
    A("full_screen", "&Full screen", w.toggle_full_screen, "F11")
    A("shortcuts", "&Keyboard shortcuts", lambda: shortcuts_dialog(w), "F1")
    A("log_folder", "Open the &log folder", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(paths.log_dir()))))
    A("about", "&About", w.show_about)


def create_menus(w: MainWindow) -> None:
    """File, Model, View (``w.pages_menu``, which already lists the pages) and Help."""
    a = w.actions_
    bar = w.menuBar()
    file = bar.addMenu("&File")
    for key in ("open_folder", "open_demo", "add_images", None, "open_image", "open_model", "open_exported", None, "quit"):
        file.addSeparator() if key is None else file.addAction(a[key])
    recent = file.addMenu("Recent folders")
    recent.aboutToShow.connect(lambda: _fill_recent(w, recent))
    file.insertMenu(a["add_images"], recent)
    model = bar.addMenu("&Model")
    for key in ("train", "cancel", None, "score_all", "evaluate", None, "save_threshold", "reset_threshold", None, "refresh_models"):
        model.addSeparator() if key is None else model.addAction(a[key])
    view = w.pages_menu
    bar.addMenu(view)
    for key in ("next", "previous", "opacity_up", "opacity_down", None, "full_screen"):
        view.addSeparator() if key is None else view.addAction(a[key])
    theme_menu = view.addMenu("Theme")
    group = QActionGroup(w)
    current = w.settings.get("view/theme", "system")
    for theme in THEMES:
        action = theme_menu.addAction(theme.capitalize(), lambda t=theme: w.set_theme(t))
        action.setCheckable(True)
        action.setChecked(theme == current)
        group.addAction(action)
    help_ = bar.addMenu("&Help")
    for key in ("shortcuts", "log_folder", "about"):
        help_.addAction(a[key])


def _fill_recent(w: MainWindow, menu) -> None:
    menu.clear()
    for folder in w.settings.recent_folders:
        menu.addAction(folder, lambda f=folder: w.data_page.open_folder(f))
    if not w.settings.recent_folders:
        menu.addAction("(none yet)").setEnabled(False)


def shortcuts_dialog(w: MainWindow) -> QDialog:
    """F1: every action that has a shortcut, read from the actions themselves."""
    dialog = QDialog(w)
    dialog.setWindowTitle("Keyboard shortcuts")
    table = QTableWidget(0, 2)
    table.setHorizontalHeaderLabels(["Action", "Shortcut"])
    table.verticalHeader().hide()
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    for action in w.actions_.values():
        keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts())
        if keys:
            row = table.rowCount()
            table.insertRow(row)
            table.setItem(row, 0, QTableWidgetItem(action.text().replace("&", "").rstrip("…")))
            table.setItem(row, 1, QTableWidgetItem(keys))
    layout = QVBoxLayout(dialog)
    layout.addWidget(table)
    dialog.resize(460, 560)
    dialog.show()
    return dialog
