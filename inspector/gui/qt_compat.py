"""Work-arounds for bugs in the Qt bindings, applied once when ``inspector.gui`` is imported.

PySide6 6.12.0 drops a reference to ``True`` on every ``SignalInstance.emit()`` (and to
``None``/``True`` in ``QTimer.singleShot``, ``QObject.sender()``, ``connect``/``disconnect``).
A window emits thousands of signals a minute, so after a while Python frees ``True`` or ``None``
and aborts ("bool_dealloc: deallocating True or False"). 6.11.3 does not have the bug; Python
3.12+ is immune (its True, False and None are immortal). On an affected interpreter we give
the three singletons so many extra references that they can never reach zero, which is what
Python 3.12 does for them by design.
"""

from __future__ import annotations

import ctypes
import sys

_EXTRA_REFERENCES = 1 << 40
applied = ""  # the PySide6 version that needed the work-around (logged by the app once its log is set up)


def singleton_refcount_bug() -> int:
    """How many references to True one signal emit loses (0 on a correct PySide6)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(16):
        probe.ping.emit()
    return max(0, (before - sys.getrefcount(True)) // 16)


def protect_singletons() -> bool:
    """Make True, False and None effectively immortal where the bug exists; True if it did."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    if not singleton_refcount_bug():
        return False
    global applied
    for obj in (True, False, None):
        ctypes.c_ssize_t.from_address(id(obj)).value += _EXTRA_REFERENCES
    from PySide6 import __version__

    applied = __version__
    return True
