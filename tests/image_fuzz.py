"""Hostile image files for `read_image`: real seeds, crafted huge headers and the fuzz-case generator.

Shared by tests/test_hostile_images.py (a few hundred cases, in-process) and bench/fuzz_images.py
(thousands, in a worker process with a time and memory bound). Everything here is deterministic:
case ``i`` of seed ``s`` is the same bytes on every run and machine with the same OpenCV.
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from inspector.data.images import ImageReadError, read_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def png_ihdr(width: int, height: int, bit_depth: int = 16, color_type: int = 6) -> bytes:
    """Signature + IHDR with a valid CRC (color type 6 = RGBA, 2 = RGB, 0 = gray)."""
    return PNG_SIGNATURE + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))


_BLOCK = 1 << 24


@lru_cache(maxsize=1)
def _zero_blocks() -> tuple[bytes, bytes]:
    """Deflate of 16 MB of zeros: (first block with the zlib header, any later block)."""
    c = zlib.compressobj(9)
    head = c.compress(bytes(_BLOCK)) + c.flush(zlib.Z_FULL_FLUSH)
    return head, head[2:]  # after a full flush the same input compresses to the same bytes


def _raw_size(width: int, height: int, bit_depth: int, color_type: int) -> int:
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    return height * (1 + (width * channels * bit_depth + 7) // 8)  # one filter byte (0) per row


def black_png(width: int, height: int, bit_depth: int = 16, color_type: int = 6) -> bytes:
    """A complete, valid PNG of an all-black image, built without ever holding its pixels.

    Deflate output repeats exactly after a full flush, so one compressed 16 MB block of zeros is
    repeated; the Adler-32 of N zero bytes is (N mod 65521) << 16 | 1. 20000×20000 16-bit RGBA
    (3.2 GB of pixels) comes out at about 3 MB in well under a second.
    """
    raw = _raw_size(width, height, bit_depth, color_type)
    n_full, rest = divmod(raw, _BLOCK)
    head, mid = _zero_blocks()
    c = zlib.compressobj(9)
    if n_full:
        c.compress(bytes(_BLOCK))
        c.flush(zlib.Z_FULL_FLUSH)
    tail = c.compress(bytes(rest)) + c.flush()
    if not n_full:
        tail = tail[2:]  # the stream header comes first below, from head or by hand
    parts = [head] + [mid] * (n_full - 1) if n_full else [b"\x78\xda"]
    parts.append(tail[:-4] + struct.pack(">I", ((raw % 65521) << 16) | 1))
    return png_ihdr(width, height, bit_depth, color_type) + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b"")


def cut_black_png(width: int, height: int, blocks: int, bit_depth: int = 16, color_type: int = 6) -> bytes:
    """A well-formed PNG (every chunk complete) whose compressed pixels stop after ``blocks`` × 16 MB:
    the decoder allocates the whole image, fills the first rows and then runs out of data."""
    head, mid = _zero_blocks()
    body = head + mid * max(0, blocks - 1)
    return png_ihdr(width, height, bit_depth, color_type) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def patch_size(data: bytes, width: int, height: int) -> bytes:
    """A real file with the size in its header replaced (PNG with a fresh CRC, JPEG, BMP, TIFF)."""
    buf = bytearray(data)
    if data[:8] == PNG_SIGNATURE:
        buf[16:24] = struct.pack(">II", width, height)
        buf[29:33] = struct.pack(">I", zlib.crc32(bytes(buf[12:29])) & 0xFFFFFFFF)
    elif data[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(buf):
            marker, length = buf[i + 1], struct.unpack(">H", buf[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                buf[i + 5 : i + 9] = struct.pack(">HH", min(height, 0xFFFF), min(width, 0xFFFF))
                break
            i += 2 + length
    elif data[:2] == b"BM":
        buf[18:26] = struct.pack("<ii", min(width, 0x7FFFFFFF), min(height, 0x7FFFFFFF))
    elif data[:2] in (b"II", b"MM"):  # classic TIFF as OpenCV writes it
        e = "<" if data[:2] == b"II" else ">"
        (offset,) = struct.unpack(e + "I", buf[4:8])
        (count,) = struct.unpack(e + "H", buf[offset : offset + 2])
        for k in range(count):
            at = offset + 2 + 12 * k
            tag = struct.unpack(e + "H", buf[at : at + 2])[0]
            if tag in (256, 257):
                buf[at + 2 : at + 12] = struct.pack(e + "HII", 4, 1, width if tag == 256 else height)
    return bytes(buf)


def jpeg_header(width: int, height: int, components: int = 3) -> bytes:
    """SOI + a baseline frame header (SOF0) claiming width×height, and nothing to decode."""
    comps = b"".join(bytes([i + 1, 0x11, 0]) for i in range(components))
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 8 + 3 * components, 8, height, width, components) + comps
    return b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + sof


def bmp_header(width: int, height: int, bits: int = 32, core: bool = False) -> bytes:
    """BITMAPINFOHEADER (or the OS/2 core header, 16-bit sizes) claiming width×height."""
    if core:
        info = struct.pack("<IHHHH", 12, width & 0xFFFF, height & 0xFFFF, 1, bits)
    else:
        info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, 0, 2835, 2835, 0, 0)
    offset = 14 + len(info)
    return b"BM" + struct.pack("<IHHI", offset + 64, 0, 0, offset) + info + bytes(64)


def tiff_header(width: int, height: int, big_endian: bool = False, bigtiff: bool = False, bits: int = 16) -> bytes:
    """A one-directory TIFF (RGBA, uncompressed) claiming width×height, with 16 bytes of strip data."""
    e = ">" if big_endian else "<"
    tags = [(256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, 1), (262, 3, 2), (277, 3, 4), (278, 4, height), (279, 4, 16)]
    if bigtiff:
        head = (b"MM" if big_endian else b"II") + struct.pack(e + "HHHQ", 43, 8, 0, 16)
        ifd_end = 16 + 8 + 20 * (len(tags) + 1) + 8
        tags.append((273, 4, ifd_end))
        tags.sort()
        ifd = struct.pack(e + "Q", len(tags)) + b"".join(struct.pack(e + "HHQQ", t, k, 1, v) for t, k, v in tags) + struct.pack(e + "Q", 0)
    else:
        head = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
        ifd_end = 8 + 2 + 12 * (len(tags) + 1) + 4
        tags.append((273, 4, ifd_end))
        tags.sort()
        ifd = _classic_ifd(e, tags)
    return head + ifd + bytes(16)


@lru_cache(maxsize=4)
def _deflated_zeros(n_bytes: int) -> bytes:
    return zlib.compress(bytes(n_bytes), 9)


def tiled_tiff(width: int, height: int, tile: int, bits: int = 16, channels: int = 4) -> bytes:
    """A deflate-compressed tiled TIFF of width×height whose single tile is tile×tile: a small file
    that inflates to a tile of tile²·channels·bits/8 bytes (a decompression bomb inside a tiny image)."""
    payload = _deflated_zeros(tile * tile * channels * bits // 8)
    e = "<"
    tags = [(256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, 8), (262, 3, 2 if channels >= 3 else 1),
            (277, 3, channels), (322, 4, tile), (323, 4, tile), (325, 4, len(payload))]
    ifd_end = 8 + 2 + 12 * (len(tags) + 1) + 4
    tags.append((324, 4, ifd_end))
    tags.sort()
    return b"II*\x00" + struct.pack(e + "I", 8) + _classic_ifd(e, tags) + payload


def _classic_ifd(e: str, tags: list[tuple[int, int, int]]) -> bytes:
    """A classic (32-bit) TIFF directory of (tag, type, value) entries, one value each, and no next directory."""
    return struct.pack(e + "H", len(tags)) + b"".join(
        struct.pack(e + "HHI", t, k, 1) + (struct.pack(e + "HH", v, 0) if k == 3 else struct.pack(e + "I", v)) for t, k, v in tags
    ) + struct.pack(e + "I", 0)


def crafted_header(kind: str, width: int, height: int) -> bytes:
    """A header of one of the four formats (png, jpeg, bmp, bmp-core, tiff, tiff-be, bigtiff) claiming width×height."""
    if kind == "png":
        return png_ihdr(width, height) + _png_chunk(b"IDAT", zlib.compress(bytes(64))) + _png_chunk(b"IEND", b"")
    if kind == "jpeg":
        return jpeg_header(width, height) + b"\xff\xd9"
    if kind == "bmp":
        return bmp_header(width, height)
    if kind == "bmp-core":
        return bmp_header(width, height, bits=24, core=True)
    if kind == "tiff":
        return tiff_header(width, height)
    if kind == "tiff-be":
        return tiff_header(width, height, big_endian=True)
    if kind == "bigtiff":
        return tiff_header(width, height, bigtiff=True)
    raise ValueError(kind)


CRAFTED_KINDS = ("png", "jpeg", "bmp", "bmp-core", "tiff", "tiff-be", "bigtiff")


@lru_cache(maxsize=1)
def seed_files() -> tuple[tuple[str, bytes], ...]:
    """Small real files: PNG, JPEG, BMP and TIFF at 8 and 16 bit (and float TIFF), gray, RGB and RGBA."""
    rng = np.random.default_rng(1234)
    h, w = 23, 31
    yy, xx = np.mgrid[0:h, 0:w]
    base = (xx * 7 + yy * 3).astype(np.float64) / (7 * w + 3 * h)

    def pixels(depth: str, channels: int) -> np.ndarray:
        noise = rng.normal(0, 0.05, (h, w, channels))
        unit = np.clip(base[..., None] + noise, 0, 1)
        if channels == 4:
            unit[..., 3] = np.where(xx > w // 2, 1.0, 0.5)
        if depth == "8":
            out = np.round(unit * 255).astype(np.uint8)
        elif depth == "16":
            out = np.round(unit * 65535).astype(np.uint16)
        else:
            out = (unit * 3.0).astype(np.float32)
        return out[..., 0] if channels == 1 else out

    wanted = [(".png", d, c) for d in ("8", "16") for c in (1, 3, 4)]
    wanted += [(".jpg", "8", c) for c in (1, 3)]
    wanted += [(".bmp", "8", c) for c in (1, 3, 4)]
    wanted += [(".tif", d, c) for d in ("8", "16") for c in (1, 3, 4)] + [(".tif", "f32", 1), (".tif", "f32", 3)]
    seeds = []
    for suffix, depth, channels in wanted:
        ok, buf = cv2.imencode(suffix, pixels(depth, channels))
        if ok:
            seeds.append((f"{suffix[1:]}-{depth}bit-{channels}ch", buf.tobytes()))
    ok, buf = cv2.imencodemulti(".tiff", [pixels("8", 1), pixels("8", 3)])
    if ok:
        seeds.append(("tif-multipage", buf.tobytes()))
    return tuple(seeds)


@dataclass(frozen=True)
class Case:
    index: int
    kind: str  # random | truncated | bitflip | overwrite | resized | huge | near-limit | tile-bomb
    label: str
    data: bytes


_INTERESTING = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE]
_INTERESTING_32 = [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x00010000, 0x0000FFFF, 0x00100000, 0]


def make_case(index: int, seed: int = 0, max_pixels: int = 100_000_000) -> Case:
    """Fuzz case ``index``: random bytes; a truncated, bit-flipped or overwritten seed; a seed with
    another size in its header; a crafted header; or a small TIFF with a huge deflated tile.

    Sizes are drawn around ``max_pixels`` (just over: refused; just under: decoded or refused by
    the decoder), far beyond any limit, or small.
    """
    rng = random.Random(seed * 1_000_003 + index)
    seeds = seed_files()
    roll = rng.random()
    if roll < 0.10:
        prefix = rng.choice([b"", PNG_SIGNATURE, b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"II+\x00"])
        body = rng.randbytes(rng.choice([0, 1, 7, 30, 300, 3000, rng.randrange(1, 5000)]))
        return Case(index, "random", f"random+{len(prefix)}", prefix + body)
    label, data = rng.choice(seeds)
    if roll < 0.35:
        cut = rng.randrange(0, len(data))
        return Case(index, "truncated", f"{label}[:{cut}]", data[:cut])
    if roll < 0.70:
        buf = bytearray(data)
        span = min(len(buf), 160) if rng.random() < 0.6 else len(buf)  # headers more often than pixels
        for _ in range(rng.randint(1, 16)):
            at = rng.randrange(span)
            buf[at] ^= 1 << rng.randrange(8)
        return Case(index, "bitflip", label, bytes(buf))
    if roll < 0.82:
        buf = bytearray(data)
        span = min(len(buf), 160)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(span)
            if rng.random() < 0.5 and at + 4 <= len(buf):
                buf[at : at + 4] = struct.pack(rng.choice("<>") + "I", rng.choice(_INTERESTING_32))
            else:
                buf[at] = rng.choice(_INTERESTING)
        return Case(index, "overwrite", label, bytes(buf))
    if roll < 0.92:  # the real file with another size in its header
        w, h = _some_size(rng, max_pixels, 0xFFFF if label.startswith("jpg") else 0x7FFFFFFF)
        return Case(index, "resized", f"{label} as {w}x{h}", patch_size(data, w, h))
    kind = rng.choice(CRAFTED_KINDS)
    field = {"jpeg": 0xFFFF, "bmp-core": 0xFFFF, "bmp": 0x7FFFFFFF}.get(kind, 0xFFFFFFFF)  # what the field holds
    if roll < 0.97:  # far beyond or just over the limit
        w, h = _some_size(rng, max_pixels, field, over=True)
        return Case(index, "huge", f"{kind} {w}x{h}", crafted_header(kind, w, h))
    if roll < 0.985:  # a small image whose tile inflates to far more than the image
        tile = rng.choice([256, 1024, 2048, 4096])
        w, h = rng.randint(1, 300), rng.randint(1, 300)
        return Case(index, "tile-bomb", f"tiff {w}x{h} tile {tile}", tiled_tiff(w, h, tile, rng.choice([8, 16]), rng.choice([1, 3, 4])))
    w = rng.randint(1, int(max_pixels**0.5) * 2)  # just under the limit, with too little data
    h = max(1, max_pixels // w - rng.randrange(3))
    if rng.random() < 0.5:
        depth, colour = rng.choice([(8, 0), (8, 2), (8, 6), (16, 0), (16, 2), (16, 6), (8, 4), (1, 0)])
        return Case(index, "near-limit", f"cut png {w}x{h} {depth}-bit type {colour}", cut_black_png(w, h, rng.randint(1, 2), depth, colour))
    w, h = min(w, field), min(h, field)
    return Case(index, "near-limit", f"{kind} {w}x{h}", crafted_header(kind, w, h))


def _some_size(rng: random.Random, max_pixels: int, field: int, over: bool = False) -> tuple[int, int]:
    """A size far beyond the limit, just over it, just under it or small (``over``: only the first two)."""
    pick = rng.randrange(2 if over else 4)
    if pick == 0:
        return rng.randint(1, field), rng.randint(1, field)
    if pick == 1 or pick == 2:
        w = rng.randint(1, min(field, max_pixels))
        h = max_pixels // w + (1 + rng.randrange(3) if pick == 1 else -rng.randrange(2))
        return w, max(1, min(h, field))
    return rng.randint(0, 64), rng.randint(0, 64)


def cases(n: int, seed: int = 0, start: int = 0, max_pixels: int = 100_000_000) -> Iterator[Case]:
    for i in range(start, start + n):
        yield make_case(i, seed, max_pixels)


def check(path: Path, max_pixels: int | None = None) -> tuple[str, str]:
    """Read one file: ("ok", shape), ("refused", reason) or ("crash", what went wrong).

    The contract under test: a uint8 HxW or HxWx3 array, or one ImageReadError with a one-line
    reason; anything else (another exception, another array) is a crash.
    """
    try:
        image = read_image(path, max_pixels=max_pixels)
    except ImageReadError as e:
        if not e.reason or "\n" in e.reason:
            return "crash", f"ImageReadError without a one-line reason: {e.reason!r}"
        return "refused", e.reason
    except Exception as e:  # noqa: BLE001 — that is exactly what is being counted
        return "crash", f"{type(e).__name__}: {e}"
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        return "crash", f"returned {type(image).__name__} {getattr(image, 'dtype', '')}"
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or image.size == 0:
        return "crash", f"returned shape {image.shape}"
    return "ok", "x".join(map(str, image.shape))
