"""Decision thresholds chosen from good images (and synthetic or labelled defects), never from a test set's min/max."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import numpy as np

from inspector.data.synthetic import make_defect_set
from inspector.engine.decision import ng_mask
from inspector.engine.metrics import auroc, best_f1


class ThresholdMode(StrEnum):
    """How a threshold was chosen. The values are the strings model files store (``method``),
    so a stored file and ``ThresholdMode`` compare equal either way."""

    GOOD_QUANTILE = "good-quantile"  # a false-alarm budget on held-out good images
    SYNTHETIC_F1 = "synthetic-f1"  # best F1 against painted defects, false alarms capped
    LABELLED_F1 = "labelled-f1"  # best F1 against labelled defect images, false alarms capped
    MANUAL = "manual"  # set by hand in the app


TRAINING_MODES = (ThresholdMode.GOOD_QUANTILE, ThresholdMode.SYNTHETIC_F1)  # what training can choose by itself
SYNTHETIC_DEFECTS_MIN = 32  # fewer painted defects make the F1 / AUROC estimates jump from run to run


@dataclass
class Threshold:
    """A threshold plus how it was chosen, stored in the model file (score > value = NG)."""

    value: float
    method: str  # a ThresholdMode value (or "uncalibrated" while training)
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
        ThresholdMode.GOOD_QUANTILE.value,
        {"false_alarm_rate": false_alarm_rate, "n_good": int(good.size)},
        {"good_mean": float(good.mean()), "good_std": float(good.std()), "good_max": float(good.max())},
    )


TAIL_SHARE = 0.1  # the highest tenth of the held-out tile scores is the tail a tiled part's maximum comes from


def tiled(threshold: Threshold, tile_scores, tiles_per_part: int, false_alarm_rate: float) -> Threshold:
    """``threshold`` raised, if need be, to what a tiled part's score (its highest tile) passes with
    probability ``false_alarm_rate`` when its tiles score like the held-out tiles: a handful of
    held-out parts cannot show how high the highest of ~100 tiles goes, so the tail of all their
    tile scores is fitted instead (beyond the top ``TAIL_SHARE``, exponential: peaks over a
    threshold) and read at ``false_alarm_rate / tiles_per_part``. Neighbouring tiles overlap and
    are not independent, which makes this a conservative (higher) threshold."""
    scores = _finite_scores(tile_scores, "held-out tile")
    per_tile = false_alarm_rate / max(int(tiles_per_part), 1)
    if scores.size < 20 or per_tile >= TAIL_SHARE:
        return threshold
    u = float(np.quantile(scores, 1.0 - TAIL_SHARE))
    excess = scores[scores > u] - u
    if excess.size == 0:
        return threshold
    floor = _finite_threshold(u + float(excess.mean()) * math.log(TAIL_SHARE / per_tile))
    if floor <= threshold.value:
        return threshold
    params = {**threshold.params, "tiles_per_part": int(tiles_per_part), "tile_tail": "exponential", "below_tail": threshold.value}
    return Threshold(floor, threshold.method, params, threshold.stats)


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
            "false_alarm_rate": float(np.mean(ng_mask(good, value))),
            "detection_rate": float(np.mean(ng_mask(bad, value))),
        },
    )


def synthetic_defects(good_images: list[np.ndarray], seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The painted (defect image, mask) pairs calibration scores: as many as there are good
    images, at least SYNTHETIC_DEFECTS_MIN; deterministic for a seed."""
    return make_defect_set(good_images, max(len(good_images), SYNTHETIC_DEFECTS_MIN), seed=seed)


def calibrate(mode: ThresholdMode | str, good_scores, false_alarm_rate: float, defect_scores=None) -> Threshold:
    """The threshold of ``mode`` from held-out good scores (and, for the F1 modes, defect scores:
    of ``synthetic_defects`` for synthetic-f1). ``false_alarm_rate`` is the target of
    good-quantile and the cap of the F1 modes. The trainer and the retrainer both choose here."""
    try:
        mode = ThresholdMode(mode)
    except ValueError:
        raise ValueError(f"unknown threshold mode '{mode}': use one of {', '.join(m.value for m in ThresholdMode)}") from None
    if mode is ThresholdMode.GOOD_QUANTILE:
        return from_good_scores(good_scores, false_alarm_rate)
    if mode is ThresholdMode.MANUAL:
        raise ValueError("a manual threshold is set by hand, not calibrated")
    if defect_scores is None:
        raise ValueError(f"{mode.value} calibration needs defect scores")
    return with_defects(good_scores, defect_scores, mode.value, false_alarm_rate)
