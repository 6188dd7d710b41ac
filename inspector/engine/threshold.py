"""Decision thresholds chosen from good images (and synthetic or labelled defects), never from a test set's min/max."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from inspector.engine.metrics import auroc, best_f1


@dataclass
class Threshold:
    """A threshold plus how it was chosen, stored in the model file (score > value = NG)."""

    value: float
    method: str  # good-quantile | synthetic-f1 | labelled-f1 | manual
    params: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Threshold":
        return cls(float(d["value"]), d["method"], dict(d.get("params", {})), dict(d.get("stats", {})))


MAX_FALSE_ALARM_RATE = 0.5  # above this the "threshold" flags most good parts: a typo, not a budget


def check_false_alarm_rate(rate: float, option: str = "false_alarm_rate") -> float:
    """``rate`` if it lies in (0, 0.5], else ValueError naming the option and the range."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (0.0 < float(rate) <= MAX_FALSE_ALARM_RATE):
        raise ValueError(f"{option} must be a number in (0, {MAX_FALSE_ALARM_RATE}] (e.g. 0.02 = 2 % of good parts flagged), got {rate!r}")
    return float(rate)


def _finite_scores(scores, what: str) -> np.ndarray:
    """Scores as float64, refused when any is NaN or infinite: a quantile of them would be
    NaN, and ``score > nan`` is False, so every part would pass as OK."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise ValueError(
            f"threshold calibration refused: {bad} of {values.size} {what} scores are not finite numbers (NaN or infinite); "
            "the model's output is unusable: lower the learning rate or check the method parameters"
        )
    return values


def _finite_threshold(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"threshold calibration refused: the threshold came out as {value}")
    return value


def from_good_scores(good_scores, false_alarm_rate: float = 0.01) -> Threshold:
    """The (1 - false_alarm_rate) quantile of held-out good scores: the false-alarm budget the line accepts."""
    check_false_alarm_rate(false_alarm_rate)
    good = _finite_scores(good_scores, "held-out good")
    if good.size == 0:
        raise ValueError("threshold calibration needs at least one held-out good image")
    value = _finite_threshold(float(np.quantile(good, 1.0 - false_alarm_rate)))
    return Threshold(
        value,
        "good-quantile",
        {"false_alarm_rate": false_alarm_rate, "n_good": int(good.size)},
        {"good_mean": float(good.mean()), "good_std": float(good.std()), "good_max": float(good.max())},
    )


def with_defects(good_scores, defect_scores, method: str, max_false_alarm_rate: float = 0.05) -> Threshold:
    """Best-F1 threshold between good and defect scores, raised if needed so that no more than
    ``max_false_alarm_rate`` of the good images are flagged (a line stops for every false alarm)."""
    check_false_alarm_rate(max_false_alarm_rate, "max_false_alarm_rate")
    good = _finite_scores(good_scores, "held-out good")
    bad = _finite_scores(defect_scores, "defect")
    if good.size == 0 or bad.size == 0:
        raise ValueError(f"threshold calibration needs good and defect scores (got {good.size} good, {bad.size} defect)")
    labels = np.r_[np.zeros(good.size), np.ones(bad.size)]
    scores = np.r_[good, bad]
    f1, value = best_f1(labels, scores)
    floor = float(np.quantile(good, 1.0 - max_false_alarm_rate))
    capped = value < floor
    value = _finite_threshold(max(value, floor))
    return Threshold(
        value,
        method,
        {"max_false_alarm_rate": max_false_alarm_rate, "n_good": int(good.size), "n_defect": int(bad.size)},
        {
            "best_f1": f1,
            "capped_by_false_alarm_rate": bool(capped),
            "auroc": auroc(labels, scores),
            "false_alarm_rate": float(np.mean(good > value)),
            "detection_rate": float(np.mean(bad > value)),
        },
    )
