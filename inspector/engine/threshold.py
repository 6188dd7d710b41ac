"""Decision thresholds chosen from good images (and synthetic or labelled defects), never from a test set's min/max."""

from __future__ import annotations

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


def from_good_scores(good_scores, false_alarm_rate: float = 0.01) -> Threshold:
    """The (1 - false_alarm_rate) quantile of held-out good scores: the false-alarm budget the line accepts."""
    good = np.asarray(good_scores, dtype=np.float64)
    if good.size == 0:
        raise ValueError("threshold calibration needs at least one held-out good image")
    value = float(np.quantile(good, 1.0 - false_alarm_rate))
    return Threshold(
        value,
        "good-quantile",
        {"false_alarm_rate": false_alarm_rate, "n_good": int(good.size)},
        {"good_mean": float(good.mean()), "good_std": float(good.std()), "good_max": float(good.max())},
    )


def with_defects(good_scores, defect_scores, method: str, max_false_alarm_rate: float = 0.05) -> Threshold:
    """Best-F1 threshold between good and defect scores, raised if needed so that no more than
    ``max_false_alarm_rate`` of the good images are flagged (a line stops for every false alarm)."""
    good = np.asarray(good_scores, dtype=np.float64)
    bad = np.asarray(defect_scores, dtype=np.float64)
    labels = np.r_[np.zeros(good.size), np.ones(bad.size)]
    scores = np.r_[good, bad]
    f1, value = best_f1(labels, scores)
    floor = float(np.quantile(good, 1.0 - max_false_alarm_rate))
    capped = value < floor
    value = max(value, floor)
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
