"""Defect regions: the connected areas of the heat map at or above a level, and the per-model
rules that judge a part by them (``RegionRules``; the decision itself is
``engine.decision.decide_with_rules``, the one home of OK/NG).

The level is on the heat scale (``Prediction.heat``, the model's fixed display scale
``map_scale``): the trainer puts heat 0 at the median good pixel and heat 1 at 1.5 × the 99.9 %
quantile q of good pixels (``trainer._map_scale``), so q itself has heat (q - m) / (1.5 q - m)
for a median m: 0.67 when m is near 0, 0.5 when m = q / 2. ``DEFAULT_LEVEL`` = 0.6 sits at about
that quantile for typical maps: about one good pixel in a thousand reaches it (measured on the
tests' tiny GANomaly: 0.09 % of the pixels of 30 unseen good parts, 2 of them with a region), so
good texture rarely makes a region and a real defect makes a patch.

Qt-free; regions are OpenCV's 8-connected components, labelled only when asked for (a model
without rules never pays for it).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from inspector.text import shown

DEFAULT_LEVEL = 0.6  # heat at about the good pixels' 99.9 % quantile (see the module notes)
MAX_REGIONS = 1000  # find_regions lists at most this many, the largest: a noisy map cannot flood memory
RULE_FIELDS = ("level", "pixel_size_mm", "ok_below_area", "ng_above_area", "max_regions")


@dataclass(frozen=True)
class Region:
    """One connected defect region at the input image's resolution."""

    area_px: int
    area_mm2: float | None  # None: no pixel size given
    bbox: tuple[int, int, int, int]  # x, y, w, h in pixels
    peak: float  # the largest anomaly-map value inside (the map's own units, as the score)
    mean: float  # the mean anomaly-map value inside

    @property
    def area(self) -> float:
        """The area the rules compare: mm² when a pixel size is known, else pixels."""
        return self.area_mm2 if self.area_mm2 is not None else float(self.area_px)

    def to_dict(self) -> dict[str, Any]:
        return {"area_px": self.area_px, "area_mm2": self.area_mm2, "bbox": list(self.bbox),
                "peak": _json_float(self.peak), "mean": _json_float(self.mean)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Region":
        def num(v: Any) -> float:
            return math.nan if v is None else float(v)

        mm2 = d.get("area_mm2")
        return cls(int(d["area_px"]), None if mm2 is None else float(mm2), tuple(int(v) for v in d["bbox"]),  # type: ignore[arg-type]
                   num(d.get("peak")), num(d.get("mean")))


def find_regions(heat: np.ndarray, anomaly_map: np.ndarray, level: float = DEFAULT_LEVEL,
                 pixel_size_mm: float | None = None, max_regions: int = MAX_REGIONS) -> list[Region]:
    """The 8-connected regions of ``heat >= level``, largest first, at most ``max_regions`` of
    them (the largest: the area rules need only the largest, a count rule only to know there are
    more than its limit). Peak and mean are read from ``anomaly_map`` (same shape). A heat pixel
    that is not a number is in no region; the rules treat a non-finite map as NG on their own."""
    import cv2

    heat = np.asarray(heat)
    amap = np.asarray(anomaly_map, dtype=np.float64)
    if heat.shape != amap.shape or heat.ndim != 2:
        raise ValueError(f"heat {heat.shape} and anomaly map {amap.shape} must be one 2-D shape")
    mask = heat >= level  # NaN compares False
    if not mask.any() or max_regions <= 0:
        return []
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.sort(np.argsort(-areas, kind="stable")[:max_regions]) + 1  # label numbers, the largest regions
    pixel_area = None if pixel_size_mm is None else float(pixel_size_mm) ** 2
    found = []
    for label in keep.tolist():
        x, y, w, h, area = (int(v) for v in stats[label, :5])
        values = amap[y : y + h, x : x + w][labels[y : y + h, x : x + w] == label]  # within its box: quick however many regions
        found.append(Region(area, None if pixel_area is None else area * pixel_area, (x, y, w, h), float(values.max()), float(values.mean())))
    found.sort(key=lambda r: (-r.area_px, r.bbox[1], r.bbox[0]))
    return found


@dataclass(frozen=True)
class RegionRules:
    """How a model judges a part by its defect regions (stored with the model; see
    ``engine.decision.decide_with_rules``). Areas are in mm² when ``pixel_size_mm`` is given,
    else in pixels. None: that rule is off."""

    level: float = DEFAULT_LEVEL  # heat at or above which a pixel belongs to a region, in (0, 1]
    pixel_size_mm: float | None = None  # the side of one input pixel on the part, > 0
    ok_below_area: float | None = None  # a score-NG part whose regions are all smaller is OK (a blemish)
    ng_above_area: float | None = None  # any region at least this large is NG, whatever the score
    max_regions: int | None = None  # more regions than this is NG, 0..MAX_REGIONS - 1

    def __post_init__(self) -> None:
        if not _real(self.level) or not 0 < self.level <= 1:
            raise ValueError(f"region level must be a number in (0, 1], got {shown(self.level)}")
        for key in ("pixel_size_mm", "ok_below_area", "ng_above_area"):
            v = getattr(self, key)
            if v is not None and (not _real(v) or not v > 0):
                raise ValueError(f"{key} must be a number above 0 or none, got {shown(v)}")
        n = self.max_regions
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < MAX_REGIONS):
            raise ValueError(f"max_regions must be a whole number 0..{MAX_REGIONS - 1} or none, got {shown(n)}")
        if self.ok_below_area is not None and self.ng_above_area is not None and self.ok_below_area > self.ng_above_area:
            raise ValueError(f"ok_below_area ({self.ok_below_area:g}) must not be above ng_above_area ({self.ng_above_area:g})")

    @property
    def unit(self) -> str:
        return "mm²" if self.pixel_size_mm is not None else "px"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> "RegionRules":
        """Checked rules (one-line ValueError); unknown keys are refused, not ignored: a rule this
        reader does not know would otherwise be dropped and parts mis-judged."""
        if not isinstance(d, dict):
            raise ValueError(f"region rules must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - set(RULE_FIELDS))
        if unknown:
            raise ValueError(f"unknown region rule(s): {', '.join(map(str, unknown))}")
        values = dict(d)
        if isinstance(values.get("level"), int) and not isinstance(values.get("level"), bool):
            values["level"] = float(values["level"])
        return cls(**values)

    def replace(self, **changes: Any) -> "RegionRules":
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line for the CLI and the app."""
        parts = [f"regions at heat ≥ {self.level:g}"]
        if self.pixel_size_mm is not None:
            parts.append(f"{self.pixel_size_mm:g} mm per pixel")
        if self.ok_below_area is not None:
            parts.append(f"OK when every region < {self.ok_below_area:g} {self.unit}")
        if self.ng_above_area is not None:
            parts.append(f"NG when a region ≥ {self.ng_above_area:g} {self.unit}")
        if self.max_regions is not None:
            parts.append(f"NG with more than {self.max_regions} region(s)")
        return "; ".join(parts)


def _real(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def _json_float(v: float) -> float | None:
    return v if math.isfinite(v) else None
