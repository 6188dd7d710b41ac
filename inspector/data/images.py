"""Reading and writing images robustly.

Everything downstream works on uint8 arrays, HxW (gray) or HxWx3 (RGB), so
this module is the single place that deals with odd files: unicode paths,
16-bit and float images, alpha channels and broken files. Bad files raise
`ImageReadError` (one exception type, with the path and a readable reason)
so callers can report them instead of crashing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


class ImageReadError(Exception):
    """An image file could not be read; carries the path and a human reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image '{self.path}': {reason}")


def read_image(path: str | os.PathLike[str], channels: int | None = None) -> np.ndarray:
    """Read an image file as uint8 HxW (gray) or HxWx3 RGB.

    Decoding goes through `np.fromfile` + `cv2.imdecode` because `cv2.imread`
    cannot open non-ASCII paths on Windows. Conversions:

    * 16-bit -> 8-bit by dividing by 257 with rounding (65535 -> 255).
    * float (and other depths): values within [0, 1] are taken as 0..1
      intensities; otherwise the image is divided by its maximum. Negative
      values and NaN become 0.
    * alpha (RGBA, gray+alpha): composited on black, so fully transparent
      pixels are black whatever colour they hide.
    * multi-page TIFF: first page only.

    `channels=1` forces gray, `channels=3` forces RGB, None keeps what the file has.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, not {channels!r}")
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as exc:
        raise ImageReadError(path, exc.strerror or str(exc)) from None
    if data.size == 0:
        raise ImageReadError(path, "empty file")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise ImageReadError(path, "not a decodable image (corrupt, truncated or unsupported format)")

    image = _to_uint8(image)
    image = _to_gray_or_rgb(image)
    if channels == 1 and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif channels == 3 and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Map any pixel depth to uint8 (see read_image for the rules)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    values = np.nan_to_num(image.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    values = np.clip(values, 0.0, None)
    peak = float(values.max()) if values.size else 0.0
    if peak > 1.0:
        values = values / peak
    return np.round(values * 255.0).astype(np.uint8)


def _to_gray_or_rgb(image: np.ndarray) -> np.ndarray:
    """Turn cv2's BGR/BGRA/gray(+alpha) into gray or RGB, compositing alpha on black."""
    if image.ndim == 2:
        return image
    n = image.shape[2]
    if n == 1:
        return image[:, :, 0]
    if n == 2:  # gray + alpha
        alpha = image[:, :, 1].astype(np.float32) / 255.0
        return np.round(image[:, :, 0] * alpha).astype(np.uint8)
    if n == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    alpha = image[:, :, 3:4].astype(np.float32) / 255.0
    rgb = cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB).astype(np.float32)
    return np.round(rgb * alpha).astype(np.uint8)


def write_image(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write a uint8 gray or RGB image; the format follows the suffix.

    Encodes in memory and writes the bytes ourselves (unicode-safe), to a temp
    file in the same folder that is then renamed over the target, so a crash
    never leaves a half-written image. Creates the parent folder if needed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise ValueError(f"unsupported image suffix {path.suffix!r} for '{path}'")
    if image.dtype != np.uint8:
        raise ValueError(f"write_image expects uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim != 2:
        raise ValueError(f"write_image expects HxW or HxWx3, got shape {image.shape}")
    ok, encoded = cv2.imencode(suffix, image)
    if not ok:
        raise ValueError(f"could not encode image as {suffix}")

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(encoded.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def list_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Sorted image files in a folder (by extension, case-insensitive), skipping hidden ones.

    With `recursive`, hidden sub-folders are skipped as well.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: '{folder}'")
    found: list[Path] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
            base = Path(dirpath)
            found.extend(base / f for f in filenames if _is_image_name(f))
    else:
        found = [p for p in folder.iterdir() if _is_image_name(p.name) and p.is_file()]
    return sorted(found)


def _is_image_name(name: str) -> bool:
    return not _is_hidden(name) and Path(name).suffix.lower() in IMAGE_EXTENSIONS


@dataclass
class ReadReport:
    """Which files loaded and which did not (with the reason), for showing the user."""

    ok: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self, max_listed: int = 5) -> str:
        """One readable paragraph: counts, then the first few failures."""
        text = f"read {len(self.ok)} image(s)"
        if not self.failed:
            return text
        text += f", {len(self.failed)} failed"
        listed = [f"{p.name} ({reason})" for p, reason in self.failed[:max_listed]]
        more = len(self.failed) - max_listed
        if more > 0:
            listed.append(f"... and {more} more")
        return text + ": " + "; ".join(listed)


def load_images(
    paths: Iterable[str | os.PathLike[str]],
    channels: int | None = None,
    size: int | None = None,
) -> tuple[list[np.ndarray], ReadReport]:
    """Read many images, skipping bad files instead of raising.

    With `size`, each image is resized to size x size (INTER_AREA, which
    averages rather than aliases when shrinking). The returned images line up
    with `report.ok`.
    """
    images: list[np.ndarray] = []
    report = ReadReport()
    for p in paths:
        p = Path(p)
        try:
            image = read_image(p, channels=channels)
        except ImageReadError as exc:
            report.failed.append((p, exc.reason))
            continue
        if size is not None and image.shape[:2] != (size, size):
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        images.append(image)
        report.ok.append(p)
    return images, report
