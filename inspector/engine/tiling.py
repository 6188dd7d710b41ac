"""Tiling: a camera image of any size (a 5 MP frame is 2448×2048) scored tile by tile, so a
defect a few pixels wide is not squashed away by resizing the whole frame to the model's input.

A model trained with tiles learns from tiles of its good images (each ``tile`` px a side in the
image's own pixels, resized to the model's input) and scores every tile of a part; the tiles'
maps are stitched back at the image's full resolution (a weighted mean that trusts each tile's
centre most, so tile borders leave no seams), and the part's score is its highest tile score.
Neighbouring tiles share ``overlap`` of their side, so a defect on a border is whole in one tile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TILE_MIN, TILE_MAX = 32, 4096
OVERLAP_MAX = 0.75
MAX_TRAINING_TILES = 4096  # tiles kept for training (evenly drawn): a large folder stays within memory
Box = tuple[int, int, int, int]  # y0, x0, y1, x1


def _starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile origins along one side: every ``stride`` px, the last one flush with the edge."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / stride) + 1
    return sorted({min(i * stride, length - tile) for i in range(count)})


@dataclass(frozen=True)
class Tiling:
    tile: int  # side of a tile, in the image's own pixels
    overlap: float = 0.25  # share of a tile's side that its neighbour also covers

    def __post_init__(self) -> None:
        if isinstance(self.tile, bool) or not isinstance(self.tile, int) or not TILE_MIN <= self.tile <= TILE_MAX:
            raise ValueError(f"tile must be a whole number of pixels {TILE_MIN}..{TILE_MAX}, got {self.tile!r}")
        o = self.overlap
        if isinstance(o, bool) or not isinstance(o, int | float) or not 0.0 <= o <= OVERLAP_MAX:
            raise ValueError(f"tile overlap must be a number from 0 to {OVERLAP_MAX}, got {o!r}")

    @property
    def stride(self) -> int:
        return max(1, round(self.tile * (1.0 - self.overlap)))

    def boxes(self, height: int, width: int) -> list[Box]:
        """The tiles that cover an image, row by row (a side shorter than a tile is one tile)."""
        th, tw = min(self.tile, height), min(self.tile, width)
        return [(y, x, y + th, x + tw) for y in _starts(height, th, self.stride) for x in _starts(width, tw, self.stride)]

    def cut(self, image: np.ndarray) -> tuple[list[np.ndarray], list[Box]]:
        boxes = self.boxes(*image.shape[:2])
        return [image[y0:y1, x0:x1] for y0, x0, y1, x1 in boxes], boxes

    def stitch(self, pieces: list[np.ndarray], boxes: list[Box], height: int, width: int) -> np.ndarray:
        """Tile-sized arrays (maps or reconstructions, float) put back together at full size."""
        first = pieces[0]
        out = np.zeros((height, width, *first.shape[2:]), np.float64)
        weight = np.zeros((height, width), np.float64)
        for piece, (y0, x0, y1, x1) in zip(pieces, boxes):
            w = _centre_weight(y1 - y0, x1 - x0)
            out[y0:y1, x0:x1] += piece * (w if piece.ndim == 2 else w[..., None])
            weight[y0:y1, x0:x1] += w
        return out / (weight if out.ndim == 2 else weight[..., None])

    def to_dict(self) -> dict:
        return {"tile": self.tile, "overlap": self.overlap}

    @classmethod
    def from_dict(cls, values: dict) -> Tiling:
        """ValueError (one line) for anything but what ``to_dict`` writes."""
        if not isinstance(values, dict) or set(values) != {"tile", "overlap"}:
            raise ValueError("tiling must be {'tile': <pixels>, 'overlap': <share>}")
        return cls(values["tile"], values["overlap"])


def _centre_weight(height: int, width: int) -> np.ndarray:
    """A tent that is highest at a tile's centre and small, never 0, at its border."""
    ys = 1.0 - np.abs(np.linspace(-1, 1, height)) * 0.9
    xs = 1.0 - np.abs(np.linspace(-1, 1, width)) * 0.9
    return np.outer(ys, xs)


def training_tiles(tiles: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """At most ``MAX_TRAINING_TILES`` of them, drawn evenly and the same for a seed."""
    if len(tiles) <= MAX_TRAINING_TILES:
        return tiles
    keep = np.sort(np.random.default_rng(seed).choice(len(tiles), MAX_TRAINING_TILES, replace=False))
    return [tiles[i] for i in keep]
