"""Small report figures drawn with OpenCV (no plotting library needed on a line PC)."""

from __future__ import annotations

import cv2
import numpy as np

from inspector.engine.metrics import auroc, roc_curve

_W, _H, _M = 480, 360, 50  # canvas size and margin
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_GOOD = (46, 139, 87)  # RGB
_DEFECT = (200, 50, 50)
_INK = (30, 30, 30)


def _canvas(title: str) -> np.ndarray:
    img = np.full((_H, _W, 3), 255, np.uint8)
    cv2.putText(img, title, (_M, 28), _FONT, 0.55, _INK, 1, cv2.LINE_AA)
    cv2.rectangle(img, (_M, _M), (_W - 20, _H - _M), _INK, 1)
    return img


def _to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    px = _M + x * (_W - 20 - _M)
    py = (_H - _M) - y * (_H - 2 * _M)
    return np.stack([px, py], axis=1).round().astype(np.int32)


def roc_plot(labels, scores) -> np.ndarray:
    fpr, tpr, _ = roc_curve(labels, scores)
    img = _canvas(f"ROC  (AUROC {auroc(labels, scores):.3f})")
    cv2.line(img, tuple(_to_px(np.r_[0.0], np.r_[0.0])[0]), tuple(_to_px(np.r_[1.0], np.r_[1.0])[0]), (180, 180, 180), 1)
    cv2.polylines(img, [_to_px(fpr, tpr)], False, _DEFECT, 2, cv2.LINE_AA)
    cv2.putText(img, "false-alarm rate", (_W // 2 - 60, _H - 15), _FONT, 0.45, _INK, 1, cv2.LINE_AA)
    cv2.putText(img, "detection rate", (5, _M - 8), _FONT, 0.45, _INK, 1, cv2.LINE_AA)
    return img


def histogram_plot(labels, scores, threshold: float, bins: int = 40) -> np.ndarray:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    lo, hi = np.quantile(np.r_[scores, threshold], [0.0, 0.995]) if scores.size else (0.0, 1.0)
    hi = max(hi, threshold) * 1.05 if hi > lo else lo + 1
    edges = np.linspace(lo, hi, bins + 1)
    img = _canvas(f"scores: good (green) vs defect (red), threshold {threshold:.4g}")
    counts = [np.histogram(np.clip(scores[labels == k], lo, hi), edges)[0] for k in (0, 1)]
    top = max(1, max(c.max() for c in counts))
    for c, colour in zip(counts, (_GOOD, _DEFECT)):
        x = (edges[:-1] + edges[1:]) / 2
        pts = _to_px((x - lo) / (hi - lo), c / top)
        cv2.polylines(img, [pts], False, colour, 2, cv2.LINE_AA)
    tx = _to_px(np.r_[(threshold - lo) / (hi - lo)], np.r_[0.0])[0][0]
    cv2.line(img, (int(tx), _M), (int(tx), _H - _M), _INK, 1, cv2.LINE_AA)
    cv2.putText(img, f"{lo:.3g}", (_M, _H - 30), _FONT, 0.4, _INK, 1, cv2.LINE_AA)
    cv2.putText(img, f"{hi:.3g}", (_W - 70, _H - 30), _FONT, 0.4, _INK, 1, cv2.LINE_AA)
    return img


def confusion_plot(confusion: dict[str, int]) -> np.ndarray:
    img = np.full((300, 360, 3), 255, np.uint8)
    cv2.putText(img, "confusion matrix (rows: truth)", (20, 28), _FONT, 0.5, _INK, 1, cv2.LINE_AA)
    cells = [[("tn", "good->OK"), ("fp", "good->NG")], [("fn", "defect->OK"), ("tp", "defect->NG")]]
    total = max(1, sum(confusion.values()))
    for r, row in enumerate(cells):
        for c, (key, text) in enumerate(row):
            x, y = 40 + c * 150, 50 + r * 120
            shade = int(255 - 160 * confusion[key] / total)
            colour = (shade, 255, shade) if key in ("tn", "tp") else (255, shade, shade)
            cv2.rectangle(img, (x, y), (x + 140, y + 110), colour, -1)
            cv2.rectangle(img, (x, y), (x + 140, y + 110), _INK, 1)
            cv2.putText(img, str(confusion[key]), (x + 20, y + 60), _FONT, 1.0, _INK, 2, cv2.LINE_AA)
            cv2.putText(img, text, (x + 10, y + 95), _FONT, 0.45, _INK, 1, cv2.LINE_AA)
    return img
