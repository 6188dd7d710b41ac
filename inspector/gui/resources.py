"""Finding the ``resources/`` folder (source tree, or a PyInstaller bundle) and the app icon."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from PySide6.QtGui import QIcon

ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def resource_dir() -> Path:
    """``resources/`` next to the package in a checkout, or inside a frozen bundle."""
    candidates = [Path(__file__).resolve().parents[2] / "resources"]
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.insert(0, Path(bundle) / "resources")
    for folder in candidates:
        if folder.is_dir():
            return folder
    return candidates[-1]


@lru_cache(maxsize=1)
def app_icon() -> QIcon:
    """The app icon in every size we ship; drawn on the fly when the PNGs are missing."""
    icon = QIcon()
    folder = resource_dir() / "icons"
    for size in ICON_SIZES:
        path = folder / f"inspector-{size}.png"
        if path.is_file():
            icon.addFile(str(path))
    if icon.isNull():
        from PySide6.QtGui import QPixmap

        from inspector.gui.icon import draw_icon

        for size in (16, 32, 64, 256):
            icon.addPixmap(QPixmap.fromImage(draw_icon(size)))
    return icon


def style_sheet() -> str:
    """The optional application style sheet (palette-neutral: only spacing and shapes)."""
    path = resource_dir() / "inspector.qss"
    return path.read_text(encoding="utf-8") if path.is_file() else ""
