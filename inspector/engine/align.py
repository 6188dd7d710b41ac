"""Alignment: parts are never placed identically. Before scoring, a part is turned and moved onto
a reference good part (ECC, Evangelidis & Psarakis 2008, Euclidean motion), so a per-position
model sees every part where it saw the good ones; the map is moved back onto the part.

Everything happens at the model's input size, on gray images. The reference is the per-pixel
median of up to ``REFERENCE_IMAGES`` training images, each first aligned to the first one, and
travels with the model (a small PNG in its metadata). A part that ECC cannot align is scored as
it is, with a confidence of 0: it then looks moved, which the model flags (fail closed).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import cv2
import numpy as np

REFERENCE_IMAGES = 32
MOTION = "euclidean"
_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-5)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def estimate(image: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """The 2×3 warp that carries ``reference``'s frame onto ``image`` (for ``warp``) and ECC's
    correlation in [-1, 1] as the confidence; identity and 0 when ECC does not converge."""
    matrix = np.eye(2, 3, dtype=np.float32)
    try:
        correlation, matrix = cv2.findTransformECC(
            reference.astype(np.float32), _gray(image).astype(np.float32), matrix, cv2.MOTION_EUCLIDEAN, _CRITERIA, None, 5
        )
    except cv2.error:
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
    """What a model file keeps: the reference good part at the model's input size."""

    reference: np.ndarray  # uint8 (H, W)

    def align(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(the part in the reference's frame, the warp, the confidence); ``image`` at the model's
        input size (the reference is scaled to it when a method scores at another size)."""
        h, w = image.shape[:2]
        reference = self.reference if self.reference.shape == (h, w) else cv2.resize(self.reference, (w, h), interpolation=cv2.INTER_AREA)
        matrix, confidence = estimate(image, reference)
        return warp(image, matrix), matrix, confidence

    def to_dict(self) -> dict:
        ok, png = cv2.imencode(".png", self.reference)
        if not ok:
            raise ValueError("the alignment reference could not be encoded")
        return {"motion": MOTION, "reference_png": base64.b64encode(png.tobytes()).decode("ascii")}

    @classmethod
    def from_dict(cls, values: dict) -> Alignment:
        """ValueError (one line) for anything but what ``to_dict`` writes."""
        if not isinstance(values, dict) or values.get("motion") != MOTION or not isinstance(values.get("reference_png"), str):
            raise ValueError(f"alignment must be {{'motion': '{MOTION}', 'reference_png': <base64 PNG>}}")
        try:
            data = np.frombuffer(base64.b64decode(values["reference_png"], validate=True), np.uint8)
        except ValueError:
            raise ValueError("alignment reference is not valid base64") from None
        reference = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
        if reference is None or reference.ndim != 2 or not (8 <= min(reference.shape) and max(reference.shape) <= 1024):
            raise ValueError("alignment reference is not a gray PNG of 8 to 1024 pixels a side")
        return cls(reference)
