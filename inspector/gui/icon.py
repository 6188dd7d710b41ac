"""The app icon, drawn with QPainter so it is sharp at every size.

A magnifying lens with a heat spot over a grid of parts: inspection that shows where.
``python -m inspector.gui.icon`` writes ``resources/icons/inspector-<size>.png``, the SVG and
the Windows ``.ico`` (run it again after changing the drawing).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter, QPainterPath, QPen, QRadialGradient

BACKGROUND_TOP = "#1b3a5c"
BACKGROUND_BOTTOM = "#2a6aa3"
LENS = "#f3f6fa"

SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">
  <defs>
    <linearGradient id="bg" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/>
    </linearGradient>
    <radialGradient id="heat" cx="124" cy="98" r="40" gradientUnits="userSpaceOnUse">
      <stop offset="0" stop-color="#fff3a0"/><stop offset="0.35" stop-color="#ffb02e"/>
      <stop offset="0.7" stop-color="#f0432a" stop-opacity="0.85"/><stop offset="1" stop-color="#f0432a" stop-opacity="0"/>
    </radialGradient>
  </defs>
  <rect x="8" y="8" width="240" height="240" rx="52" fill="url(#bg)"/>
  {cells}
  <circle cx="108" cy="108" r="62" fill="#ffffff" fill-opacity="0.16"/>
  <circle cx="124" cy="98" r="40" fill="url(#heat)"/>
  <circle cx="108" cy="108" r="62" fill="none" stroke="{lens}" stroke-width="16"/>
  <line x1="156" y1="156" x2="204" y2="204" stroke="{lens}" stroke-width="26" stroke-linecap="round"/>
</svg>
"""


def _cells() -> list[QRectF]:
    """A 3 x 3 grid of parts behind the lens."""
    return [QRectF(40 + 62 * i, 40 + 62 * j, 52, 52) for i in range(3) for j in range(3)]


def draw_icon(size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.scale(size / 256, size / 256)

    background = QLinearGradient(0, 8, 0, 248)
    background.setColorAt(0, QColor(BACKGROUND_TOP))
    background.setColorAt(1, QColor(BACKGROUND_BOTTOM))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(background)
    p.drawRoundedRect(QRectF(8, 8, 240, 240), 52, 52)

    if size >= 32:  # the grid only blurs small icons
        p.setBrush(QColor(255, 255, 255, 34))
        for cell in _cells():
            p.drawRoundedRect(cell, 8, 8)

    p.setBrush(QColor(255, 255, 255, 40))
    p.drawEllipse(QPointF(108, 108), 62, 62)
    heat = QRadialGradient(QPointF(124, 98), 40)
    heat.setColorAt(0.0, QColor("#fff3a0"))
    heat.setColorAt(0.35, QColor("#ffb02e"))
    heat.setColorAt(0.7, QColor(240, 67, 42, 216))
    heat.setColorAt(1.0, QColor(240, 67, 42, 0))
    lens = QPainterPath()
    lens.addEllipse(QPointF(108, 108), 62, 62)
    p.save()
    p.setClipPath(lens)
    p.setBrush(heat)
    p.drawEllipse(QPointF(124, 98), 40, 40)
    p.restore()

    pen = QPen(QColor(LENS), 16)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawEllipse(QPointF(108, 108), 62, 62)
    pen.setWidthF(26)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    p.drawLine(QPointF(156, 156), QPointF(204, 204))
    p.end()
    return image


def svg_text() -> str:
    cells = "\n  ".join(
        f'<rect x="{r.x():g}" y="{r.y():g}" width="{r.width():g}" height="{r.height():g}" rx="8" fill="#ffffff" fill-opacity="0.13"/>'
        for r in _cells()
    )
    return SVG.format(top=BACKGROUND_TOP, bottom=BACKGROUND_BOTTOM, lens=LENS, cells=cells)


def write_icons(folder: Path) -> list[Path]:
    """PNGs in every size, the SVG, and a multi-size .ico next to the folder (for Windows bundles)."""
    from inspector.gui.resources import ICON_SIZES

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for size in ICON_SIZES:
        path = folder / f"inspector-{size}.png"
        draw_icon(size).save(str(path))
        written.append(path)
    svg = folder / "inspector.svg"
    svg.write_text(svg_text(), encoding="utf-8")
    written.append(svg)
    ico = folder.parent / "inspector.ico"
    ico.write_bytes(ico_bytes([folder / f"inspector-{s}.png" for s in (16, 24, 32, 48, 64, 128, 256)]))
    written.append(ico)
    return written


def ico_bytes(pngs: list[Path]) -> bytes:
    """A multi-size Windows icon whose entries are PNGs (supported since Windows Vista)."""
    import struct

    datas = [p.read_bytes() for p in pngs]
    header = struct.pack("<HHH", 0, 1, len(datas))
    offset = len(header) + 16 * len(datas)
    entries = b""
    for path, data in zip(pngs, datas):
        size = int(path.stem.rsplit("-", 1)[1])
        side = 0 if size >= 256 else size  # 0 means 256 in an icon directory
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset)
        offset += len(data)
    return header + entries + b"".join(datas)


if __name__ == "__main__":
    from PySide6.QtGui import QGuiApplication

    from inspector.gui.resources import resource_dir

    app = QGuiApplication(sys.argv[:1])
    for path in write_icons(resource_dir() / "icons"):
        print(path)
