"""Detection metrics in plain numpy (labels: 1 = defect, 0 = good; higher score = more anomalous)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from inspector.engine.decision import ng_mask


def _check(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    return y, s


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their mean rank (as scipy.stats.rankdata)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)
    return ((last - counts + 1 + last) / 2.0)[inverse]


def auroc(labels, scores) -> float:
    """Area under the ROC curve (Mann–Whitney U with tied ranks averaged); nan if one class is missing."""
    y, s = _check(labels, scores)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _ranked(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scores sorted high to low, the index of the last of each run of equal scores, and the true
    and false positives when everything down to that run is called a defect (the ROC, AP and
    best-F1 sweeps all walk these)."""
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], y.size - 1]
    tps = np.cumsum(y)[distinct]
    return s, distinct, tps, (distinct + 1) - tps


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and the thresholds (score >= t is a defect)."""
    s, distinct, tps, fps = _ranked(*_check(labels, scores))
    tpr = np.r_[0.0, tps / max(tps[-1], 1)]
    fpr = np.r_[0.0, fps / max(fps[-1], 1)]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def average_precision(labels, scores) -> float:
    y, s = _check(labels, scores)
    if y.sum() == 0:
        return float("nan")
    _, distinct, tps, _ = _ranked(y, s)
    precision = tps / (distinct + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def precision_recall_f1(labels, predictions) -> tuple[float, float, float]:
    c = confusion(labels, predictions)
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def best_f1(labels, scores) -> tuple[float, float]:
    """(best F1, threshold reaching it); decisions are score > threshold, as everywhere in the app."""
    y, s = _check(labels, scores)
    s_sorted, distinct, tps, fps = _ranked(y, s)
    n_pos = max(int(y.sum()), 1)
    f1 = 2 * tps / (tps + fps + n_pos)
    i = int(np.argmax(f1))
    # a threshold strictly below the chosen score and above the next one down
    below = s_sorted[distinct[i] + 1] if distinct[i] + 1 < s.size else s_sorted[distinct[i]] - 1e-6
    return float(f1[i]), float((s_sorted[distinct[i]] + below) / 2)


def confusion(labels, predictions) -> dict[str, int]:
    y, p = _check(labels, predictions)
    p = p.astype(bool)
    return {
        "tn": int(np.sum((y == 0) & ~p)),
        "fp": int(np.sum((y == 0) & p)),
        "fn": int(np.sum((y == 1) & ~p)),
        "tp": int(np.sum((y == 1) & p)),
    }


def false_alarm_at_recall(labels, scores, recall: float = 0.9) -> float:
    """Share of good parts flagged when the threshold is set to catch ``recall`` of the defects."""
    y, s = _check(labels, scores)
    defect_scores = s[y == 1]
    if defect_scores.size == 0 or (y == 0).sum() == 0:
        return float("nan")
    k = max(1, int(np.ceil(recall * defect_scores.size - 1e-9)))
    lowest_caught = np.sort(defect_scores)[::-1][k - 1]
    return float(np.mean(s[y == 0] >= lowest_caught))


def pixel_auroc(masks, maps, max_pixels: int = 2_000_000, seed: int = 0) -> float:
    """AUROC over all pixels of the images that have masks (subsampled deterministically when huge)."""
    y = np.concatenate([(np.asarray(m) > 0).ravel() for m in masks])
    s = np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in maps])
    if y.size > max_pixels:
        keep = np.random.default_rng(seed).choice(y.size, max_pixels, replace=False)
        y, s = y[keep], s[keep]
    return auroc(y.astype(np.int64), s)


@dataclass
class DetectionMetrics:
    image_auroc: float
    average_precision: float
    best_f1: float
    best_f1_threshold: float
    f1: float  # at the threshold in use
    precision: float
    recall: float
    false_alarm_rate: float  # on good images, at the threshold in use
    false_alarm_at_90_recall: float
    threshold: float
    confusion: dict[str, int]
    n_good: int
    n_defect: int

    def to_dict(self) -> dict:
        return asdict(self)


def detection_metrics(labels, scores, threshold: float) -> DetectionMetrics:
    """Every image-level figure the app reports, at the given threshold (score > threshold = NG)."""
    y, s = _check(labels, scores)
    predictions = ng_mask(s, threshold)
    precision, recall, f1 = precision_recall_f1(y, predictions)
    good = y == 0
    bf1, bthr = best_f1(y, s) if y.sum() else (float("nan"), float("nan"))
    return DetectionMetrics(
        image_auroc=auroc(y, s),
        average_precision=average_precision(y, s),
        best_f1=bf1,
        best_f1_threshold=bthr,
        f1=f1,
        precision=precision,
        recall=recall,
        false_alarm_rate=float(predictions[good].mean()) if good.any() else float("nan"),
        false_alarm_at_90_recall=false_alarm_at_recall(y, s, 0.9),
        threshold=float(threshold),
        confusion=confusion(y, predictions),
        n_good=int(good.sum()),
        n_defect=int((~good).sum()),
    )
