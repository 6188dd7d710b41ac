"""The OK/NG rule, in one place: NG when the score is above the threshold, and fail closed: a
score or threshold that is not a finite number (NaN, inf) can never be judged OK."""

from __future__ import annotations

import math

import numpy as np

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
