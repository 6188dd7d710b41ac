"""Synthetic defects painted onto real good images.

Real defect images are scarce, so tests, threshold calibration and
localisation metrics use good images with painted defects plus an exact
pixel mask. The mask is ground truth for pixel-level AUROC, so it is made
from the pixels that actually changed: changes smaller than `_MIN_STEP`
gray levels are undone, every remaining changed pixel is in the mask, and
nothing outside the mask differs from the input.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

VISIBLE_KINDS = ("scratch", "blob", "perlin", "cutpaste", "crack", "region")  # make_defect_set's: a miss is the model's fault
DEFECT_KINDS = (*VISIBLE_KINDS, "hairline")  # every painter for any image; a hairline is faint by design
COLOUR_KINDS = ("stain",)  # painters for colour images only: a change of hue that a gray model cannot see

_MIN_STEP = 4  # smaller per-pixel changes are reverted: invisible, and would blur the mask edge
_MIN_MEAN_CHANGE = 15.0  # a defect must change its pixels this much on average to count
_MIN_MEAN_CHANGE_OF = {"hairline": 6.0}  # a hairline is faint by design; it must still be seen
_ATTEMPTS = 20


def paint_defect(
    image: np.ndarray,
    rng: np.random.Generator,
    kind: str | None = None,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one defect; returns (defective image, mask 0/255 HxW uint8).

    `kind` is one of DEFECT_KINDS (None picks one at random); `scale`
    multiplies the defect size. A too-faint result (e.g. cut-paste inside a
    uniform area) is retried; if every try is faint, a solid contrasting blob
    is painted instead so the result is always a visible defect.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 HxW or HxWxC image, got {image.dtype} {image.shape}")
    if kind is None:
        kind = DEFECT_KINDS[int(rng.integers(len(DEFECT_KINDS)))]
    if kind not in _PAINTERS:
        raise ValueError(f"unknown defect kind {kind!r}; expected one of {DEFECT_KINDS + COLOUR_KINDS}")
    if kind in COLOUR_KINDS and not (image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"a {kind} is a change of colour: it needs an RGB image, got {image.shape}")
    work = image.astype(np.float32)
    if work.ndim == 2:
        work = work[:, :, None]
    for _ in range(_ATTEMPTS):
        result, mask = _finalise(image, _PAINTERS[kind](work, rng, scale))
        if _strong_enough(image, result, mask, _MIN_MEAN_CHANGE_OF.get(kind, _MIN_MEAN_CHANGE)):
            return result, mask
    return _finalise(image, _solid_blob(work, rng, scale))


def make_defect_set(
    images: list[np.ndarray], n: int, seed: int, kinds: tuple[str, ...] = VISIBLE_KINDS
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n` (defective image, mask) pairs, `kinds` in turn, images picked at random.

    Deterministic for a given seed and image list.
    """
    if n > 0 and not images:
        raise ValueError("make_defect_set needs at least one image")
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        image = images[int(rng.integers(len(images)))]
        pairs.append(paint_defect(image, rng, kinds[i % len(kinds)]))
    return pairs


# --- shared helpers ---------------------------------------------------------------


def _finalise(original: np.ndarray, painted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Round to uint8, revert faint changes, and derive the exact mask."""
    result = np.clip(np.round(painted), 0, 255).astype(np.uint8).reshape(original.shape)
    diff = _pixel_diff(original, result)
    faint = (diff > 0) & (diff < _MIN_STEP)
    result[faint] = original[faint]
    mask = np.where(diff >= _MIN_STEP, 255, 0).astype(np.uint8)
    return result, mask


def _pixel_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel absolute difference, the largest over channels."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return diff.max(axis=2) if diff.ndim == 3 else diff


def _strong_enough(original: np.ndarray, result: np.ndarray, mask: np.ndarray, min_change: float) -> bool:
    inside = mask > 0
    min_area = max(4, int(0.0005 * mask.size))
    if inside.sum() < min_area:
        return False
    return float(_pixel_diff(original, result)[inside].mean()) >= min_change


def _contrast_delta(work: np.ndarray, region: np.ndarray, rng: np.random.Generator) -> float:
    """A signed intensity shift that contrasts with the region: darker on bright, brighter on dark."""
    local = float(work[region].mean()) if region.any() else float(work.mean())
    size = rng.uniform(40.0, 90.0)
    return -size if local > 127.0 else size


def _value_noise(shape: tuple[int, int], rng: np.random.Generator, cells: int, octaves: int = 3) -> np.ndarray:
    """Smooth random field in [0, 1]: random grids upsampled bicubically, several octaves summed."""
    h, w = shape
    total = np.zeros((h, w), np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        c = cells * 2**octave
        grid = rng.random((c + 1, c + 1)).astype(np.float32)
        total += amplitude * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        amplitude *= 0.5
    total -= total.min()
    peak = total.max()
    return total / peak if peak > 0 else total


def _irregular_polygon(center: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Vertices of a lumpy, stretched, rotated ellipse (int32, 4-bit fixed point for cv2)."""
    theta = np.linspace(0.0, 2 * np.pi, 32, endpoint=False)
    r = np.full_like(theta, radius)
    for k in (2, 3, 4):
        r += radius * rng.uniform(-0.15, 0.15) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    stretch = rng.uniform(0.6, 1.4)
    x, y = r * np.cos(theta) * stretch, r * np.sin(theta) / stretch
    angle = rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    pts = np.stack([c * x - s * y, s * x + c * y], axis=1) + center
    return np.round(pts * 16).astype(np.int32)


def _fill_polygon(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [pts], 255, cv2.LINE_AA, shift=4)
    return canvas


def _random_center(h: int, w: int, rng: np.random.Generator, margin: float = 0.1) -> np.ndarray:
    return np.array([rng.uniform(margin, 1 - margin) * w, rng.uniform(margin, 1 - margin) * h])


# --- the painters: each returns a float HxWxC image ----------------------------------


def _scratch(work: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """One to three thin curved strokes in a contrasting gray."""
    h, w = work.shape[:2]
    side = min(h, w)
    canvas = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        length = side * rng.uniform(0.25, 0.6) * scale
        thickness = max(1, round(side * rng.uniform(0.004, 0.012) * scale))
        cv2.polylines(canvas, [_bezier(h, w, length, rng)], False, 255, thickness, cv2.LINE_AA, shift=4)
    alpha = canvas.astype(np.float32)[:, :, None] / 255.0
    local = float(work[canvas > 127].mean()) if (canvas > 127).any() else float(work.mean())
    target = rng.uniform(0.0, 40.0) if local > 110.0 else rng.uniform(200.0, 255.0)
    strength = rng.uniform(0.6, 1.0)
    return work + strength * alpha * (target - work)


def _bezier(h: int, w: int, length: float, rng: np.random.Generator) -> np.ndarray:
    """A gently curved cubic Bezier of about `length` pixels centred inside the image."""
    center = _random_center(h, w, rng, margin=0.15)
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    p0, p3 = center - direction * length / 2, center + direction * length / 2
    p1 = p0 + (p3 - p0) / 3 + normal * length * rng.uniform(-0.3, 0.3)
    p2 = p0 + 2 * (p3 - p0) / 3 + normal * length * rng.uniform(-0.3, 0.3)
    t = np.linspace(0.0, 1.0, max(8, int(length / 2)))[:, None]
    pts = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    return np.round(pts * 16).astype(np.int32)


def _blob(work: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """An irregular spot with soft edges, shifted darker or brighter."""
    h, w = work.shape[:2]
    radius = max(2.0, min(h, w) * rng.uniform(0.015, 0.075) * scale)
    shape = _fill_polygon((h, w), _irregular_polygon(_random_center(h, w, rng), radius, rng))
    alpha = cv2.GaussianBlur(shape.astype(np.float32) / 255.0, (0, 0), max(0.5, radius * 0.2))
    delta = _contrast_delta(work, shape > 127, rng)
    return work + alpha[:, :, None] * delta


def _perlin(work: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A noise-shaped patch whose intensity and texture change (like stains or corrosion)."""
    h, w = work.shape[:2]
    size = max(8, int(min(h, w) * rng.uniform(0.12, 0.3) * scale))
    ph, pw = min(size, h), min(size, w)
    y0, x0 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    yy, xx = np.meshgrid(np.linspace(-1, 1, ph), np.linspace(-1, 1, pw), indexing="ij")
    falloff = np.clip(1.0 - (xx**2 + yy**2), 0.0, 1.0).astype(np.float32)  # keeps it off the patch border
    field = _value_noise((ph, pw), rng, cells=int(rng.integers(2, 5))) * falloff
    field /= max(float(field.max()), 1e-6)
    alpha = np.clip((field - rng.uniform(0.3, 0.5)) / 0.08, 0.0, 1.0)
    texture = _value_noise((ph, pw), rng, cells=int(rng.integers(4, 10)), octaves=2)
    patch = work[y0 : y0 + ph, x0 : x0 + pw]
    delta = _contrast_delta(patch, alpha > 0.5, rng)
    out = work.copy()
    out[y0 : y0 + ph, x0 : x0 + pw] += (alpha * delta * (0.5 + 0.5 * texture))[:, :, None]
    return out


def _cutpaste(work: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A rectangle cut from elsewhere in the image, maybe rotated / re-lit, pasted somewhere else."""
    h, w = work.shape[:2]
    ph = int(max(4, min(h, w) * rng.uniform(0.08, 0.2) * scale))
    pw = int(ph * np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    ph, pw = min(ph, h // 2), min(max(pw, 4), w // 2)
    sy, sx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    for _ in range(10):  # prefer a target that does not overlap the source
        ty, tx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        if abs(ty - sy) >= ph or abs(tx - sx) >= pw:
            break
    patch = work[sy : sy + ph, sx : sx + pw].copy()
    if rng.random() < 0.5:
        turn = cv2.getRotationMatrix2D((pw / 2, ph / 2), rng.uniform(-45, 45), 1.0)
        rotated = cv2.warpAffine(patch, turn, (pw, ph), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        patch = rotated.reshape(patch.shape)
    if rng.random() < 0.5:
        patch = patch * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20)
    out = work.copy()
    out[ty : ty + ph, tx : tx + pw] = patch
    return out


def _shade(work: np.ndarray, alpha: np.ndarray, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Darken where ``alpha`` (HxW in [0, 1]) is set, by a factor in [low, high] — or, on a dark
    part, brighten toward white by the same share, so the change always contrasts."""
    region = alpha > 0.5
    local = float(work[region].mean()) if region.any() else float(work.mean())
    keep = rng.uniform(low, high)
    target = work * keep if local > 80.0 else work + (255.0 - work) * (1.0 - keep)
    return work + alpha[:, :, None] * (target - work)


def _crack(work: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """One to three long, thin, nearly straight lines, mostly from edge to edge (as a cracked
    cell, glass or casting shows them)."""
    h, w = work.shape[:2]
    canvas = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        p0 = _edge_point(h, w, rng) if rng.random() < 0.7 else _random_center(h, w, rng)
        p1 = _edge_point(h, w, rng) if rng.random() < 0.5 else _random_center(h, w, rng)
        p1 = p0 + (p1 - p0) * min(1.0, scale)
        t = np.linspace(0.0, 1.0, int(rng.integers(2, 6)))[:, None]
        pts = p0 + t * (p1 - p0)
        pts[1:-1] += rng.normal(0.0, 0.03 * max(h, w), size=pts[1:-1].shape)  # a crack kinks, it does not curve
        thickness = max(1, round(min(h, w) / 128 * rng.uniform(0.8, 1.8)))
        cv2.polylines(canvas, [np.round(pts * 16).astype(np.int32)], False, 255, thickness, cv2.LINE_AA, shift=4)
    return _shade(work, canvas.astype(np.float32) / 255.0, rng, 0.45, 0.92)


def _region(work: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A large area cut off by straight edges (a half-plane piece or a corner) with a changed,
    slightly mottled intensity, as a dead region of a solar cell or a coating fault."""
    h, w = work.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    region = np.ones((h, w), bool)
    for _ in range(int(rng.integers(1, 3))):
        p = _random_center(h, w, rng, margin=0.0)
        angle = rng.uniform(0, 2 * np.pi)
        region &= (xx - p[0]) * np.cos(angle) + (yy - p[1]) * np.sin(angle) > 0
    if not 0.03 <= region.mean() <= 0.5 * scale:  # too small or too big: a corner piece instead
        cx, cy = [(0, 0), (w, 0), (0, h), (w, h)][int(rng.integers(4))]
        region = np.abs(xx - cx) + np.abs(yy - cy) < rng.uniform(0.15, 0.5) * scale * w
    alpha = cv2.GaussianBlur(region.astype(np.float32), (0, 0), rng.uniform(0.5, 1.5))
    mottle = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), max(1.0, min(h, w) / 64))
    return _shade(work, np.clip(alpha * (1.0 + 0.3 * mottle), 0.0, 1.0), rng, 0.25, 0.85)


def _hairline(work: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """One to three faint lines thinner than a pixel: short straight segments (mostly along an
    axis, as a finger interruption or micro-crack in a solar cell shows) or long gently curved
    cracks. Drawn at 4× resolution and averaged down, so their contrast is partial, as a crack
    finer than the camera's pixel looks."""
    h, w = work.shape[:2]
    up = 4
    canvas = np.zeros((h * up, w * up), np.uint8)
    side = min(h, w) * up
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.5:
            length = side * rng.uniform(0.08, 0.4) * scale
            angle = rng.choice([0.0, np.pi / 2]) + rng.normal(0.0, 0.05) if rng.random() < 0.7 else rng.uniform(0, np.pi)
            center = _random_center(h * up, w * up, rng)
            step = np.array([np.cos(angle), np.sin(angle)]) * length / 2
            pts = np.round(np.stack([center - step, center + step]) * 16).astype(np.int32)
        else:
            pts = _bezier(h * up, w * up, side * rng.uniform(0.3, 0.9) * scale, rng)
        cv2.polylines(canvas, [pts], False, 255, int(rng.integers(1, up + 1)), cv2.LINE_AA, shift=4)
    alpha = cv2.resize(canvas.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_AREA)
    return _shade(work, alpha, rng, 0.4, 0.85)


def _stain(work: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A colour stain (oil, rust, a coating of the wrong colour): inside a soft blob the hue moves
    and the brightness stays, so only a colour model can see it."""
    h, w = work.shape[:2]
    radius = max(3.0, min(h, w) * rng.uniform(0.08, 0.16) * scale)
    shape = _fill_polygon((h, w), _irregular_polygon(_random_center(h, w, rng), radius, rng)).astype(np.float32) / 255.0
    alpha = cv2.GaussianBlur(shape, (0, 0), 1.0)
    ycc = cv2.cvtColor(np.clip(np.round(work), 0, 255).astype(np.uint8), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    angle, strength = rng.uniform(0, 2 * np.pi), rng.uniform(25.0, 45.0)
    ycc[..., 1] += alpha * strength * np.cos(angle)
    ycc[..., 2] += alpha * strength * np.sin(angle)
    return cv2.cvtColor(np.clip(ycc, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB).astype(np.float32)


def _edge_point(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0, 1)
    return np.array([(t * w, 0.0), (t * w, h - 1.0), (0.0, t * h), (w - 1.0, t * h)][int(rng.integers(4))])


def _solid_blob(work: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Fallback: a hard-edged blob of black or white, whichever contrasts; always visible."""
    h, w = work.shape[:2]
    radius = max(3.0, min(h, w) * 0.06 * scale)
    shape = _fill_polygon((h, w), _irregular_polygon(_random_center(h, w, rng), radius, rng)) > 127
    value = 0.0 if float(work[shape].mean()) > 127.5 else 255.0
    out = work.copy()
    out[shape] = value
    return out


_PAINTERS: dict[str, Callable[[np.ndarray, np.random.Generator, float], np.ndarray]] = {
    "scratch": _scratch,
    "blob": _blob,
    "perlin": _perlin,
    "cutpaste": _cutpaste,
    "crack": _crack,
    "region": _region,
    "hairline": _hairline,
    "stain": _stain,
}
