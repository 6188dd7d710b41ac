"""The OK/NG rule, in one place: NG when the score is above the threshold, and fail closed: a
score or threshold that is not a finite number (NaN, inf) can never be judged OK.

A model may carry region rules (``engine.regions.RegionRules``): then ``decide_with_rules`` is
the rule, and it says which rule decided. Without rules it is ``decide`` exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from inspector.engine.regions import RegionRules

OK = "OK"
NG = "NG"


def is_ng(score: float, threshold: float) -> bool:
    return not (math.isfinite(score) and math.isfinite(threshold) and score <= threshold)


def decide(score: float, threshold: float) -> str:
    return NG if is_ng(score, threshold) else OK


def ng_mask(scores, threshold: float) -> np.ndarray:
    """``is_ng`` for an array of scores."""
    s = np.asarray(scores, dtype=np.float64)
    if not math.isfinite(threshold):
        return np.ones(s.shape, dtype=bool)
    return ~(np.isfinite(s) & (s <= threshold))


def decide_with_rules(score: float, threshold: float, areas: Sequence[float], rules: RegionRules | None,
                      map_finite: bool = True) -> tuple[str, str]:
    """The decision and the rule that made it (a short reason).

    ``areas``: of the regions found at ``rules.level`` (largest first or not; in the rules' unit);
    ``map_finite``: whether the anomaly map held only finite values. In this order:

    1. a score or threshold that is not finite is NG, whatever the rules (fail closed);
    2. without rules: NG when score > threshold (``decide``; the map is not looked at);
    3. a map that is not finite is NG (its regions cannot be trusted);
    4. more regions than ``max_regions`` is NG; a region of at least ``ng_above_area`` is NG;
    5. a score above the threshold is OK only when it has regions and all are smaller than
       ``ok_below_area`` (a tolerated blemish); with no region it stays NG (fail closed);
    6. otherwise the score decides.
    """
    if not (math.isfinite(score) and math.isfinite(threshold)):
        return NG, "score or threshold is not a number"
    above = is_ng(score, threshold)  # the score's own verdict, by the one rule above
    if rules is None:
        return (NG, "score above threshold") if above else (OK, "score within threshold")
    if not map_finite:
        return NG, "anomaly map is not a number everywhere"
    unit = rules.unit
    largest = max(areas, default=0.0)
    if rules.max_regions is not None and len(areas) > rules.max_regions:
        return NG, f"{len(areas)} regions, more than {rules.max_regions}"
    if rules.ng_above_area is not None and areas and largest >= rules.ng_above_area:
        return NG, f"region of {largest:.4g} {unit} ≥ {rules.ng_above_area:g} {unit}"
    if above:
        if rules.ok_below_area is not None and areas and largest < rules.ok_below_area:
            return OK, f"score above threshold, but every region < {rules.ok_below_area:g} {unit}: tolerated"
        if rules.ok_below_area is not None and not areas:
            return NG, "score above threshold and no region to judge"
        return NG, "score above threshold"
    return OK, "score within threshold"
