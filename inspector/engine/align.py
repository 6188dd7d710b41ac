"""Alignment: parts are never placed identically. Before scoring, a part is turned and moved onto
a reference good part, so a per-position model sees every part where it saw the good ones; the
map is moved back onto the part.

Two steps, both at the model's input size on gray images: a coarse search for the shift (the
reference's centre matched over the part, within ``MAX_SHIFT``), which keeps the second step off
the wrong one of a repeated pattern's many near-equal optima; then ECC (Evangelidis & Psarakis
2008, Euclidean motion) from there. A motion beyond ``MAX_SHIFT`` or ``MAX_ANGLE``, or ECC's
correlation below the floor learnt from the training parts, means the part could not be aligned:
its verdict is NG (fail closed), whatever its score.

The reference is the per-pixel median of up to ``REFERENCE_IMAGES`` training images, each first
aligned to the first one, and travels with the model (a small PNG in its metadata) with the floor.
Alignment needs the part's own edges in view: a part that fills the frame and leaves it when it
moves cannot be put back (what left the frame is not in the image).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import cv2
import numpy as np

REFERENCE_IMAGES = 32
MOTION = "euclidean"
MAX_SHIFT = 0.15  # of the image's shorter side
MAX_ANGLE = 10.0  # degrees
FLOOR_FACTOR = 0.75  # the confidence floor: this share of the lowest confidence among the training parts
_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-5)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _coarse_shift(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The whole-pixel shift that best matches the reference's centre within the part (identity
    when the reference has no structure to match)."""
    h, w = reference.shape
    margin = max(1, round(MAX_SHIFT * min(h, w)))
    matrix = np.eye(2, 3, dtype=np.float32)
    centre = reference[margin : h - margin, margin : w - margin]
    if centre.size == 0 or float(centre.std()) < 1e-3:
        return matrix
    response = cv2.matchTemplate(image, centre, cv2.TM_CCOEFF_NORMED)
    if not np.isfinite(response).all():
        return matrix
    _, _, _, (x, y) = cv2.minMaxLoc(response)
    matrix[0, 2], matrix[1, 2] = x - margin, y - margin
    return matrix


def within_bounds(matrix: np.ndarray, size: tuple[int, int]) -> bool:
    """Whether a warp moves the part's centre by at most ``MAX_SHIFT`` (with room for the coarse
    search's corners and ECC's last steps) and turns it by at most ``MAX_ANGLE``."""
    h, w = size
    centre = matrix @ np.array([w / 2, h / 2, 1.0])
    shift = math.hypot(centre[0] - w / 2, centre[1] - h / 2)
    angle = math.degrees(math.atan2(float(matrix[1, 0]), float(matrix[0, 0])))
    return bool(np.isfinite(matrix).all()) and shift <= 1.5 * MAX_SHIFT * min(h, w) and abs(angle) <= MAX_ANGLE


def estimate(image: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """The 2×3 warp that carries ``reference``'s frame onto ``image`` (for ``warp``) and ECC's
    correlation in [-1, 1] as the confidence; identity and 0 when the part cannot be aligned."""
    gray, ref = _gray(image).astype(np.float32), reference.astype(np.float32)
    try:
        correlation, matrix = cv2.findTransformECC(ref, gray, _coarse_shift(gray, ref), cv2.MOTION_EUCLIDEAN, _CRITERIA, None, 5)
    except cv2.error:
        return np.eye(2, 3, dtype=np.float32), 0.0
    if not (math.isfinite(correlation) and within_bounds(matrix, ref.shape)):
        return np.eye(2, 3, dtype=np.float32), 0.0
    return matrix, float(correlation)


def warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``image`` in the reference's frame (borders repeated)."""
    h, w = image.shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, matrix, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def unwarp(array: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """A map (or reconstruction) made in the reference's frame, moved back onto the part."""
    h, w = array.shape[:2]
    return cv2.warpAffine(array, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def build_reference(images: list[np.ndarray]) -> np.ndarray:
    """A typical good part: the median of the first training images, each aligned to the first."""
    if not images:
        raise ValueError("alignment needs at least one good image for its reference")
    first = _gray(images[0])
    stack = [first] + [warp(_gray(im), estimate(im, first)[0]) for im in images[1:REFERENCE_IMAGES]]
    return np.median(np.stack(stack), axis=0).astype(np.uint8)


@dataclass
class Alignment:
    """What a model file keeps: the reference good part at the model's input size, and the
    confidence below which a part counts as not aligned."""

    reference: np.ndarray  # uint8 (H, W)
    min_confidence: float = 0.0

    @classmethod
    def fit(cls, images: list[np.ndarray]) -> tuple[Alignment, list[np.ndarray]]:
        """The alignment learnt from good training parts, and those parts aligned by it. The floor
        sits below the lowest training confidence, so a good part is rarely refused; a part that
        is not one (another product, a blank frame) falls far below it."""
        alignment = cls(build_reference(images))
        aligned = [alignment.align(im) for im in images]
        confidences = [c for _, _, c in aligned if c > 0]
        alignment.min_confidence = FLOOR_FACTOR * min(confidences) if confidences else 0.0
        return alignment, [x for x, _, _ in aligned]

    def align(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(the part in the reference's frame, the warp, the confidence); ``image`` at the model's
        input size (the reference is scaled to it when a method scores at another size)."""
        h, w = image.shape[:2]
        reference = self.reference if self.reference.shape == (h, w) else cv2.resize(self.reference, (w, h), interpolation=cv2.INTER_AREA)
        matrix, confidence = estimate(image, reference)
        return warp(image, matrix), matrix, confidence

    def aligned(self, confidence: float) -> bool:
        """Whether a part with this confidence was put onto the reference (else: NG)."""
        return confidence > 0 and confidence >= self.min_confidence

    def to_dict(self) -> dict:
        ok, png = cv2.imencode(".png", self.reference)
        if not ok:
            raise ValueError("the alignment reference could not be encoded")
        return {"motion": MOTION, "reference_png": base64.b64encode(png.tobytes()).decode("ascii"),
                "min_confidence": self.min_confidence}

    @classmethod
    def from_dict(cls, values: dict) -> Alignment:
        """ValueError (one line) for anything but what ``to_dict`` writes."""
        if not isinstance(values, dict) or values.get("motion") != MOTION or not isinstance(values.get("reference_png"), str):
            raise ValueError(f"alignment must be {{'motion': '{MOTION}', 'reference_png': <base64 PNG>}}")
        floor = values.get("min_confidence", 0.0)
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not 0.0 <= floor <= 1.0:
            raise ValueError("alignment min_confidence must be a number from 0 to 1")
        try:
            data = np.frombuffer(base64.b64decode(values["reference_png"], validate=True), np.uint8)
        except ValueError:
            raise ValueError("alignment reference is not valid base64") from None
        reference = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
        if reference is None or reference.ndim != 2 or not (8 <= min(reference.shape) and max(reference.shape) <= 1024):
            raise ValueError("alignment reference is not a gray PNG of 8 to 1024 pixels a side")
        return cls(reference, float(floor))
