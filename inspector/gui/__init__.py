"""The desktop app: a thin PySide6 shell over the Qt-free core (``inspector.data/models/engine``).

This package is the only place that imports Qt, pyqtgraph or superqt. Start it with
``inspector gui`` (or ``inspector demo``); the entry point is :func:`inspector.gui.app.run`.

Layout:
  app.py          QApplication set-up: name, icon, theme, logging, excepthook; ``run()``
  main_window.py  the window: page list (``MainWindow.add_page``), status bar, closing cleanly
  menus.py        the window's actions, menus and shortcuts (and the F1 list of them)
  session.py      what the pages share: the open dataset, the loaded model, THE threshold, scores
  workers.py      background jobs (superqt thread workers) with progress events and cancel
  settings.py     what persists between runs (QSettings)
  pages/          data, train, results, evaluate, models, history; live/ (the Live page's widgets)
  widgets/        image views, thumbnails, plots, confusion matrix, job progress, message bar, ...
  formatting.py   how figures read (ratio, percent)
  gc_guard.py     Python's cycle collector on the UI thread only
  qt_compat.py    work-arounds for bugs in the Qt bindings
"""

import os

os.environ.setdefault("QT_API", "pyside6")  # superqt/qtpy: use the PySide6 we depend on

from inspector.gui.qt_compat import protect_singletons

protect_singletons()  # PySide6 6.12.0 refcount bug: see qt_compat
