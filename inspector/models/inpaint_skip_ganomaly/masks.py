"""Masks for the inpainting variant: random shapes to train on, a fixed grid to score with.

Training masks mix the shapes a defect can take (rectangles, free-form strokes, ellipses)
plus the checkerboard cells the scoring pass hides, so scoring asks nothing unseen.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

KINDS = ("rectangle", "stroke", "ellipse", "grid")


def grid_masks(size: int, cells: int, device: torch.device | str = "cpu") -> Tensor:
    """Four (4, 1, S, S) masks, each hiding every other cell of a ``cells``×``cells`` grid; together they cover each pixel once."""
    index = torch.arange(size, device=device) * cells // size
    masks = [((index[:, None] % 2 == i) & (index[None, :] % 2 == j)) for i in (0, 1) for j in (0, 1)]
    return torch.stack(masks)[:, None].float()


def random_masks(n: int, size: int, rng: np.random.Generator, area: tuple[float, float], cells: int) -> np.ndarray:
    """``n`` float32 (S, S) masks of 1s where the image is hidden, each covering roughly ``area`` of the image."""
    return np.stack([_one_mask(size, rng, area, cells) for _ in range(n)])


def _one_mask(size: int, rng: np.random.Generator, area: tuple[float, float], cells: int) -> np.ndarray:
    kind = KINDS[int(rng.integers(len(KINDS)))]
    if kind == "grid":
        return grid_masks(size, cells)[int(rng.integers(4)), 0].numpy()
    target = rng.uniform(*area)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(30):
        if mask.mean() >= target:
            break
        if kind == "rectangle":
            w, h = (rng.uniform(0.1, 0.45, 2) * size).astype(int) + 1
            x, y = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
            mask[y : y + h, x : x + w] = 1
        elif kind == "ellipse":
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            axes = tuple(int(v) for v in rng.uniform(0.05, 0.25, 2) * size + 1)
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:  # a free-form stroke: a thick random polyline
            points = [rng.uniform(0, size, 2)]
            for _ in range(int(rng.integers(3, 7))):
                step = rng.uniform(0.1, 0.3) * size
                angle = rng.uniform(0, 2 * np.pi)
                points.append(np.clip(points[-1] + step * np.array([np.cos(angle), np.sin(angle)]), 0, size - 1))
            thickness = max(1, int(rng.uniform(0.04, 0.1) * size))
            cv2.polylines(mask, [np.array(points, np.int32)], False, 1, thickness)
    return mask.astype(np.float32)
