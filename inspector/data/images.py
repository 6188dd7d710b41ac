"""Reading and writing images robustly.

Everything downstream works on uint8 arrays, HxW (gray) or HxWx3 (RGB), so
this module is the single place that deals with odd files: unicode paths,
16-bit and float images, alpha channels and broken or hostile files. Every
per-file failure raises `ImageReadError` (one exception type, with the path
and a readable reason) so callers report the file and carry on: one file
never ends a run.

A file is checked before it is decoded: it must be a regular file (not a
directory, a FIFO or a broken link), no larger than the pixel limit allows,
and a PNG, JPEG, BMP or TIFF whose header gives a size within the pixel limit
(default 100 MP; `INSPECTOR_MAX_IMAGE_PIXELS` or the `max_pixels` argument).
So a 3 MB PNG that claims 20000x20000 pixels is refused without allocating
its 3.2 GB.
"""

from __future__ import annotations

import os
import stat
import struct
from functools import partial
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inspector.atomic import write_bytes_atomic

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

MAX_PIXELS_ENV = "INSPECTOR_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
# A file larger than this many bytes per allowed pixel is refused before it is read: 8 covers an
# uncompressed 16-bit RGBA image at the limit (any real compressed file is far smaller).
FILE_BYTES_PER_PIXEL = 8

_UNDECODABLE = "not a decodable image"


class ImageReadError(Exception):
    """An image file could not be read; carries the path and a human reason.

    ``transient`` is True where the same file may read fine later (a camera still writing it:
    empty, truncated, undecodable); False where waiting cannot help (gone, a directory, a broken
    link, over the size limit). A watched folder retries only transient failures.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, transient: bool = False) -> None:
        self.path = Path(path)
        self.reason = reason
        self.transient = transient
        super().__init__(f"cannot read image '{self.path}': {reason}")


def max_image_pixels(value: int | None = None) -> int:
    """The pixel limit in force: ``value`` if given, else $INSPECTOR_MAX_IMAGE_PIXELS, else 100 MP.

    Read on every call (no cached state), so a test or a service can change the variable.
    """
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"max_pixels must be a whole number of pixels >= 1, not {value!r}")
        return int(value)
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        number = float(text.replace("_", ""))
    except ValueError:
        number = float("nan")
    if not (number >= 1 and number == int(number)):
        raise ValueError(f"{MAX_PIXELS_ENV} must be a whole number of pixels >= 1 (e.g. 100000000), not {text!r}")
    return int(number)


def _mp(pixels: int | float) -> str:
    return f"{pixels / 1e6:.3g}"


def _size_text(n_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes} bytes"


def read_image(
    path: str | os.PathLike[str], channels: int | None = None, max_pixels: int | None = None
) -> np.ndarray:
    """Read an image file as uint8 HxW (gray) or HxWx3 RGB; any per-file failure is ImageReadError.

    Decoding goes through the file's bytes + `cv2.imdecode` because `cv2.imread`
    cannot open non-ASCII paths on Windows. Before decoding, the header's
    width x height is checked against the pixel limit (see `max_image_pixels`),
    and so is what the decoders would otherwise trust: every PNG chunk must lie
    inside the file, a JPEG must end after its scan data and be large enough for
    its size, a TIFF's tiles must not dwarf the image. Conversions:

    * 16-bit -> 8-bit by dividing by 257 with rounding (65535 -> 255).
    * float (and other depths): values within [0, 1] are taken as 0..1
      intensities; otherwise the image is divided by its maximum. Negative
      values and NaN become 0.
    * alpha (RGBA, gray+alpha): composited on black, so fully transparent
      pixels are black whatever colour they hide.
    * multi-page TIFF: first page only.

    `channels=1` forces gray, `channels=3` forces RGB, None keeps what the file has.
    A bad `channels`, `max_pixels` or $INSPECTOR_MAX_IMAGE_PIXELS is a ValueError (the caller's
    mistake, not the file's).
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, not {channels!r}")
    limit = max_image_pixels(max_pixels)
    path = Path(path)
    data = _read_bytes(path, limit)
    try:
        width, height, check_body = _header_size(data)
        if width < 1 or height < 1:
            raise ImageReadError(path, f"{_UNDECODABLE} (its header gives a size of {width}×{height})")
        if width * height > limit:
            raise ImageReadError(
                path, f"{width}×{height} = {_mp(width * height)} MP, over the {_mp(limit)} MP limit ({MAX_PIXELS_ENV})"
            )
        if check_body is not None:
            check_body()
        image = _decode(path, data, limit)
        del data, check_body  # the file's bytes are not needed any more: free them before converting
        image = _to_uint8(image)
        image = _to_gray_or_rgb(image)
        if channels == 1 and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        elif channels == 3 and image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        return np.ascontiguousarray(image)
    except ImageReadError:
        raise
    except _HeaderError as exc:
        raise ImageReadError(path, f"{_UNDECODABLE} ({exc})", transient=True) from None
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode it") from None
    except Exception as exc:  # noqa: BLE001 — whatever a decoder throws, it is this file's failure
        raise ImageReadError(path, f"{_UNDECODABLE} ({_one_line(exc)})", transient=True) from None


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _read_bytes(path: Path, limit: int) -> bytes:
    """The file's bytes, after checking it is a regular, non-empty file of a plausible size.

    Opened non-blocking so a FIFO named ``x.png`` cannot hang the reader, and checked with fstat on
    the open descriptor (no race between the check and the read).
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageReadError(path, f"broken link (to '{_link_target(path)}')") from None
        raise ImageReadError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory") from None
    except PermissionError:
        if os.path.isdir(path):  # what Windows says for a directory
            raise ImageReadError(path, "is a directory") from None
        raise ImageReadError(path, "permission denied", transient=True) from None
    except OSError as exc:
        raise ImageReadError(path, exc.strerror or str(exc), transient=True) from None
    max_bytes = limit * FILE_BYTES_PER_PIXEL + (1 << 20)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageReadError(path, "is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise ImageReadError(path, "not a regular file (a FIFO, socket or device)")
        if st.st_size > max_bytes:
            raise ImageReadError(path, _too_large(st.st_size, limit, max_bytes))
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(path, "not enough memory to read it") from None
    except OSError as exc:
        raise ImageReadError(path, exc.strerror or str(exc), transient=True) from None
    finally:
        os.close(fd)
    if not data:
        raise ImageReadError(path, "empty file", transient=True)
    if len(data) > max_bytes:  # it grew while being read
        raise ImageReadError(path, _too_large(len(data), limit, max_bytes))
    return data


def _too_large(n_bytes: int, limit: int, max_bytes: int) -> str:
    return (
        f"file is {_size_text(n_bytes)}, over the {_size_text(max_bytes)} that the {_mp(limit)} MP limit "
        f"allows ({MAX_PIXELS_ENV})"
    )


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


# --- headers: the size a file claims, before anything is allocated for it ----------------------------


class _HeaderError(Exception):
    """The header is too short or malformed to give a size (maybe still being written)."""


_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _header_size(data: bytes) -> tuple[int, int, Callable[[], None] | None]:
    """(width, height, a further check or None) from a PNG, JPEG, BMP or TIFF header.

    _HeaderError for anything else. The further check (a JPEG's scan data) runs only once the
    size is known to be within the limit, so an oversized file is refused for its size.

    Only these four formats (the ones IMAGE_EXTENSIONS names) reach the decoder: OpenCV's other
    decoders (PxM, EXR, HDR, ...) are never given a file they were not meant for.
    """
    if data[:8] == _PNG:
        if len(data) < 24:
            raise _HeaderError("truncated PNG header")
        if data[12:16] != b"IHDR":
            raise _HeaderError("PNG without its IHDR header chunk")
        _check_png_chunks(data)
        return (*struct.unpack(">II", data[16:24]), None)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:2] == b"BM":
        return (*_bmp_size(data), None)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff_size(data)
    raise _HeaderError("corrupt, truncated or unsupported format")  # not a PNG, JPEG, BMP or TIFF


def _check_png_chunks(data: bytes) -> None:
    """Every chunk must lie inside the file, up to IEND.

    OpenCV reads a PNG chunk by allocating the length its header claims: a bit flip that makes an
    IDAT "4 GB long" cost 4 GB and 20 s before the decoder noticed the file is 5 kB.
    """
    at, n = 8, len(data)
    while at < n:  # every step moves at least 12 bytes forward
        if at + 8 > n:
            raise _HeaderError("truncated PNG (a chunk header past the end of the file)")
        (length,) = struct.unpack(">I", data[at : at + 4])
        end = at + 12 + length
        if length > 0x7FFFFFFF or end > n:
            raise _HeaderError(f"truncated or corrupt PNG (chunk {data[at + 4 : at + 8]!r} of {length} bytes at {at} runs past the end)")
        if data[at + 4 : at + 8] == b"IEND":
            return
        at = end


def _jpeg_size(data: bytes) -> tuple[int, int, Callable[[], None]]:
    """Walk the marker segments up to the first frame header (SOFn), as libjpeg does."""
    i, n = 2, len(data)
    while i < n:  # every step moves i forward
        if data[i] != 0xFF:
            i += 1  # bytes between segments: libjpeg skips them too (with a warning)
            continue
        while i < n and data[i] == 0xFF:
            i += 1  # fill bytes
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker in _JPEG_SOF:
            if i + 7 > n:
                break
            height, width = struct.unpack(">HH", data[i + 3 : i + 7])
            return width, height, partial(_check_jpeg_body, data, i, marker, width, height)
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            raise _HeaderError("JPEG without a frame header")
        if marker == 0x01 or 0xD0 <= marker <= 0xD8 or marker == 0x00:
            continue  # markers without a length
        if i + 2 > n:
            break
        (length,) = struct.unpack(">H", data[i : i + 2])
        if length < 2:
            raise _HeaderError("JPEG segment with a bad length")
        i += length
    raise _HeaderError("truncated JPEG header")


def _check_jpeg_body(data: bytes, sof_at: int, marker: int, width: int, height: int) -> None:
    """Refuse a JPEG whose scan data is missing or cut short, which libjpeg would "decode" anyway.

    libjpeg only warns about a premature end and fills the rest with gray: a 1 kB file whose
    header says 10000×9999 costs 4 s and 650 MB and comes back as a plausible gray image. Two
    exact tests: the end-of-image marker must follow the first scan (inside scan data an FF byte
    is always followed by 00 or a restart marker, so FF D9 cannot occur by chance), and a
    Huffman-coded JPEG needs at least one bit per 8×8 block (every block codes its DC term).
    """
    scan = data.find(b"\xff\xda", sof_at)
    if scan < 0 or data.find(b"\xff\xd9", scan) < 0:
        raise _HeaderError("truncated JPEG (no end-of-image marker after the scan data)")
    huffman = marker < 0xC8
    if huffman and len(data) < width * height // 512:
        raise _HeaderError(
            f"truncated JPEG ({len(data)} bytes cannot hold {width}×{height} pixels, which need at least {width * height // 512})"
        )


def _bmp_size(data: bytes) -> tuple[int, int]:
    if len(data) < 26:
        raise _HeaderError("truncated BMP header")
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # a negative height means top-down rows


def _tiff_size(data: bytes) -> tuple[int, int, Callable[[], None]]:
    """ImageWidth (256) and ImageLength (257) of the first directory (the page OpenCV decodes).

    The further check refuses tiles far larger than the image: OpenCV allocates and inflates one
    whole tile (up to 1 GB), so a 0.5 MB TIFF of 64×64 pixels with 8192×8192 deflated tiles cost
    5.5 s and 400 MB. A tile may exceed the image by its 16-pixel alignment or be up to 1024 wide.
    """
    order = "<" if data[:2] == b"II" else ">"
    n = len(data)
    big = data[2:4] in (b"+\x00", b"\x00+")
    if big:  # BigTIFF: 8-byte offsets, 20-byte entries
        if n < 16:
            raise _HeaderError("truncated TIFF header")
        (offset,) = struct.unpack(order + "Q", data[8:16])
        count_fmt, count_size, entry_size, value_at = "Q", 8, 20, 12
    else:
        if n < 8:
            raise _HeaderError("truncated TIFF header")
        (offset,) = struct.unpack(order + "I", data[4:8])
        count_fmt, count_size, entry_size, value_at = "H", 2, 12, 8
    if offset + count_size > n:
        raise _HeaderError("truncated TIFF header (directory past the end of the file)")
    (count,) = struct.unpack(order + count_fmt, data[offset : offset + count_size])
    count = min(count, (n - offset - count_size) // entry_size)
    found: dict[int, int] = {}
    value_formats = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8
    for k in range(count):
        at = offset + count_size + k * entry_size
        tag, kind = struct.unpack(order + "HH", data[at : at + 4])
        if tag in (256, 257, 322, 323) and kind in value_formats and tag not in found:
            (found[tag],) = struct.unpack_from(order + value_formats[kind], data, at + value_at)
    if 256 not in found or 257 not in found:
        raise _HeaderError("TIFF directory without image width and height")
    width, height = found[256], found[257]

    def check_tiles() -> None:
        tile = (found.get(322), found.get(323))
        if tile == (None, None):
            return
        if None in tile or tile[0] > max(1024, -(-width // 16) * 16) or tile[1] > max(1024, -(-height // 16) * 16):
            raise _HeaderError(f"TIFF tiles of {tile[0]}×{tile[1]} for a {width}×{height} image")

    return width, height, check_tiles


# --- decoding and conversion -------------------------------------------------------------------


def _decode(path: Path, data: bytes, limit: int) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageReadError(path, f"{_UNDECODABLE} (corrupt, truncated or unsupported format)", transient=True)
    if image.ndim not in (2, 3) or (image.ndim == 3 and not 1 <= image.shape[2] <= 4):
        raise ImageReadError(path, f"{_UNDECODABLE} (unsupported layout {image.shape})")
    if image.dtype.kind not in "uif" or image.dtype.itemsize > 8:
        raise ImageReadError(path, f"{_UNDECODABLE} (unsupported pixel type {image.dtype})")
    if image.shape[0] * image.shape[1] > limit:  # the decoder saw another size than the header
        raise ImageReadError(path, f"{image.shape[1]}×{image.shape[0]} pixels, over the {_mp(limit)} MP limit ({MAX_PIXELS_ENV})")
    return image


# Conversions run over blocks of rows so that their temporaries stay small next to a large image.
_BLOCK_ELEMENTS = 1 << 20


def _blocks(image: np.ndarray) -> Iterator[slice]:
    per_row = max(1, image[:1].size)
    step = max(1, _BLOCK_ELEMENTS // per_row)
    for start in range(0, image.shape[0], step):
        yield slice(start, start + step)


def _map_blocks(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape, np.uint8)
    for rows in _blocks(image):
        out[rows] = fn(image[rows])
    return out


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Map any pixel depth to uint8 (see read_image for the rules)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:  # round(v / 257), exact for every 16-bit value, no temporaries
        return cv2.convertScaleAbs(image, alpha=1.0 / 257.0)

    def clean(block: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf are mapped just below
            values = np.nan_to_num(block.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        return np.clip(values, 0.0, None)

    peak = max((float(clean(image[rows]).max()) for rows in _blocks(image)), default=0.0)
    divisor = peak if peak > 1.0 else 1.0
    return _map_blocks(image, lambda b: np.round(clean(b) / divisor * 255.0).astype(np.uint8), image.shape)


def _to_gray_or_rgb(image: np.ndarray) -> np.ndarray:
    """Turn cv2's BGR/BGRA/gray(+alpha) into gray or RGB, compositing alpha on black."""
    if image.ndim == 2:
        return image
    n = image.shape[2]
    if n == 1:
        return image[:, :, 0]
    if n == 2:  # gray + alpha
        def premultiplied(b: np.ndarray) -> np.ndarray:
            return cv2.multiply(np.ascontiguousarray(b[:, :, 0]), np.ascontiguousarray(b[:, :, 1]), scale=1.0 / 255.0)

        return _map_blocks(image, premultiplied, image.shape[:2])
    if n == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def composite(b: np.ndarray) -> np.ndarray:  # rgb * alpha / 255, rounded
        alpha = cv2.cvtColor(np.ascontiguousarray(b[:, :, 3]), cv2.COLOR_GRAY2RGB)
        return cv2.multiply(cv2.cvtColor(b, cv2.COLOR_BGRA2RGB), alpha, scale=1.0 / 255.0)

    return _map_blocks(image, composite, (*image.shape[:2], 3))


def write_image(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write a uint8 gray or RGB image; the format follows the suffix.

    Encodes in memory and writes the bytes through `write_bytes_atomic`
    (unicode-safe; temp file, fsync, rename), so a crash never leaves a
    half-written image. Creates the parent folder if needed.
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
    write_bytes_atomic(path, encoded.tobytes())


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def list_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Sorted entries with an image name (by extension, case-insensitive), skipping hidden ones.

    Every entry with an image name is listed, including ones that cannot be images (a directory
    named ``x.png``, a broken link, a FIFO): reading them raises ImageReadError ("is a directory",
    "broken link ..."), so they reach the user's list of unreadable files instead of vanishing.
    With `recursive`, sub-folders are walked instead (hidden ones skipped), so a folder named
    ``x.png`` is searched rather than listed.
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
        found = [p for p in folder.iterdir() if _is_image_name(p.name)]
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
            try:
                image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            except (MemoryError, cv2.error) as exc:
                report.failed.append((p, f"cannot resize it ({type(exc).__name__})"))
                continue
        images.append(image)
        report.ok.append(p)
    return images, report
