"""Application set-up: name and icon, theme (system, light or dark), logging to the platform log
folder, an excepthook that shows and logs instead of dying, and :func:`run`."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, QtMsgType, qInstallMessageHandler
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox

from inspector import __version__
from inspector.engine import paths

APP_NAME = "inspector"
DISPLAY_NAME = "Inspector"
THEMES = ("system", "light", "dark")
log = logging.getLogger("inspector.gui")


def setup_logging() -> Path:
    """Log to <log folder>/inspector.log (rotated) and to stderr for warnings."""
    path = paths.log_dir() / "inspector.log"
    root = logging.getLogger("inspector")
    if not any(getattr(h, "_inspector", False) for h in root.handlers):
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s [%(threadName)s] %(name)s: %(message)s"))
        handler._inspector = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    qInstallMessageHandler(_qt_message)
    return path


def _qt_message(kind, context, message: str) -> None:
    level = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
    }.get(kind, logging.ERROR)
    logging.getLogger("inspector.qt").log(level, message)


def create_application(argv: list[str] | None = None, theme: str = "system") -> QApplication:
    from inspector.gui.gc_guard import collect_garbage_on_ui_thread
    from inspector.gui.resources import app_icon

    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(DISPLAY_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName(APP_NAME)
    app.setWindowIcon(app_icon())
    apply_theme(app, theme)
    collect_garbage_on_ui_thread()
    return app


def apply_theme(app: QApplication, theme: str = "system") -> None:
    """Fusion everywhere (same look on every OS); the system's colours unless light/dark is forced.

    The style sheet only shapes things and reads colours from the palette, so it is set again
    after the palette changes (Qt does not re-apply palette colours to styled widgets by itself).
    """
    from inspector.gui.resources import style_sheet

    app.setStyleSheet("")
    app.setStyle("Fusion")
    if theme == "dark":
        app.setPalette(dark_palette())
    elif theme == "light":
        app.setPalette(app.style().standardPalette())
    else:
        app.setPalette(QPalette())  # back to what the platform says (follows the system scheme)
    app.setStyleSheet(style_sheet())


def dark_palette() -> QPalette:
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2b2d30",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1e1f22",
        QPalette.ColorRole.AlternateBase: "#26282b",
        QPalette.ColorRole.ToolTipBase: "#3c3f41",
        QPalette.ColorRole.ToolTipText: "#e6e6e6",
        QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#35373b",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Link: "#6aa7ff",
        QPalette.ColorRole.Highlight: "#3d7bd9",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.PlaceholderText: "#8c8f94",
        QPalette.ColorRole.Light: "#4a4d52",
        QPalette.ColorRole.Midlight: "#3f4246",
        QPalette.ColorRole.Mid: "#55585d",
        QPalette.ColorRole.Dark: "#18191b",
        QPalette.ColorRole.Shadow: "#000000",
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7d82"))
    return p


# --- errors: shown and logged, never fatal -------------------------------------------------------
_boxes: list[QMessageBox] = []


def show_unexpected_error(exc_type, value, tb) -> None:
    """The excepthook: log the traceback, show it in a message box, keep running."""
    if issubclass(exc_type, KeyboardInterrupt):
        QApplication.quit()
        return
    text = "".join(traceback.format_exception(exc_type, value, tb))
    log.critical("unexpected error:\n%s", text)
    app = QApplication.instance()
    if app is None or threading.current_thread() is not threading.main_thread():
        return
    if len(_boxes) >= 3:  # a storm of errors: the log has them all
        return
    box = QMessageBox(QMessageBox.Icon.Critical, DISPLAY_NAME, f"Something went wrong: {value or exc_type.__name__}")
    box.setInformativeText(f"The app keeps running. Details are in the log: {paths.log_dir() / 'inspector.log'}")
    box.setDetailedText(text)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.finished.connect(lambda _=None, b=box: _boxes.remove(b) if b in _boxes else None)
    _boxes.append(box)
    box.show()


def install_excepthook() -> None:
    sys.excepthook = show_unexpected_error
    threading.excepthook = lambda args: show_unexpected_error(args.exc_type, args.exc_value, args.exc_traceback)


# --- running -------------------------------------------------------------------------------------
def check_display() -> None:
    """A clear message instead of Qt aborting the process when there is no screen to show on."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        raise RuntimeError(
            "no display to open the window on (DISPLAY is not set): run it on a desktop, "
            "under xvfb-run, or use the command line (`inspector demo --headless`, `inspector --help`)"
        )


class _FirstPaint(QObject):
    """Calls back once, right after the window first paints (= visible on screen)."""

    def __init__(self, callbacks: list) -> None:
        super().__init__()
        self.callbacks = callbacks

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Paint and self.callbacks:
            callbacks, self.callbacks = self.callbacks, []
            for callback in callbacks:
                QTimer.singleShot(0, callback)
        return False


def run(
    data: str | None = None,
    model: str | None = None,
    demo: dict | None = None,
    screenshot: str | None = None,
    screenshot_delay: float = 2.0,
    theme: str | None = None,
) -> int:
    """Open the window. ``demo`` = {"method", "epochs"} opens the demo project (and trains it if needed)."""
    started = time.perf_counter()
    check_display()
    log_path = setup_logging()
    from inspector.gui.settings import Settings

    settings = Settings()
    theme = theme or os.environ.get("INSPECTOR_THEME") or settings.get("view/theme", "system")
    app = create_application(theme=theme if theme in THEMES else "system")
    install_excepthook()
    log.info("inspector %s starting (log: %s)", __version__, log_path)
    from inspector.gui import qt_compat

    if qt_compat.applied:
        log.warning("PySide6 %s loses references to True/None on signals: work-around applied (prefer another PySide6 version)", qt_compat.applied)

    from inspector.gui.main_window import MainWindow

    window = MainWindow(settings)
    begun = []

    def begin() -> None:  # background start-up (torch, registry, folder, model) once the window shows
        if not begun:
            begun.append(True)
            window.start(data=data, model=model, demo=demo)

    callbacks = [begin]
    probe = os.environ.get("INSPECTOR_STARTUP_PROBE")
    if probe:  # bench/startup.py: report when the window is first painted, then quit
        def report() -> None:
            t0 = float(probe) if probe.replace(".", "", 1).isdigit() else None
            since_start = time.time() - t0 if t0 else float("nan")
            print(f"startup-visible {since_start:.3f} {time.perf_counter() - started:.3f}", flush=True)
            app.quit()

        callbacks.insert(0, report)
    window._first_paint = _FirstPaint(callbacks)  # type: ignore[attr-defined]
    window.installEventFilter(window._first_paint)
    window.show()
    QTimer.singleShot(1500, begin)  # in case the window is never painted (minimised, no compositor)
    if screenshot:
        _screenshot_when_idle(window, Path(screenshot), screenshot_delay)
    code = app.exec()
    # delete the window while Python is still whole (not in arbitrary order at interpreter exit)
    window.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return code


def _screenshot_when_idle(window, path: Path, delay: float, limit: float = 60.0) -> None:
    """Grab the window once start-up work is done (or after ``limit`` s), save it, quit."""
    from inspector.gui.workers import active_jobs

    started = time.monotonic()

    def check() -> None:
        waited = time.monotonic() - started
        busy = [j for j in active_jobs() if not j.title.startswith("Training")]
        if waited < delay or (busy and waited < limit):
            QTimer.singleShot(200, check)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(path))
        log.info("screenshot %s: %s", "saved" if ok else "FAILED", path)
        print(f"screenshot {'saved' if ok else 'FAILED'}: {path}", flush=True)
        window.confirm_close = False  # nobody is there to answer "quit while training?"
        window.close()
        QApplication.instance().exit(0 if ok else 1)

    QTimer.singleShot(200, check)
