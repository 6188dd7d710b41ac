"""Write an evaluation report folder: metrics.json, scores.csv, ROC, histogram, confusion matrix, overlays."""

from __future__ import annotations

import csv
import json
from pathlib import Path


from inspector.data.datasets import DEFECT, GOOD
from inspector.data.images import ImageReadError, read_image, write_image
from inspector.engine import plots
from inspector.engine.decision import NG, OK
from inspector.engine.evaluate import Evaluation
from inspector.engine.predictor import Predictor


def write_report(ev: Evaluation, predictor: Predictor, out: Path, overlays: int = 24) -> Path:
    """The figures an engineer looks at first, plus overlays of the most telling images:
    the highest-scoring defects, the missed defects and the false alarms."""
    out = Path(out)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(ev.to_dict(), indent=2))
    with open(out / "scores.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "defect_type", "score", "threshold", "decision"])
        for r in ev.rows:
            writer.writerow([r.sample.path, r.sample.label, r.sample.defect_type, f"{r.score:.6g}", f"{ev.threshold:.6g}", r.decision])
    labels, scores = ev.labels_scores()
    if ev.metrics is not None:
        if (labels == DEFECT).any() and (labels == GOOD).any():
            write_image(out / "roc.png", plots.roc_plot(labels, scores))
        write_image(out / "histogram.png", plots.histogram_plot(labels, scores, ev.threshold))
        write_image(out / "confusion.png", plots.confusion_plot(ev.metrics.confusion))
    for r in _telling(ev, overlays):
        try:
            pred = predictor.predict(read_image(r.sample.path))
        except ImageReadError:
            continue
        kind = {(DEFECT, NG): "detected", (DEFECT, OK): "missed", (GOOD, NG): "false-alarm"}.get(
            (r.sample.label, r.decision), "ok"
        )
        write_image(out / "overlays" / f"{kind}_{r.score:.4g}_{Path(r.sample.path).stem}.png", pred.overlay(0.5))
    return out


def _telling(ev: Evaluation, n: int) -> list:
    rows = sorted(ev.rows, key=lambda r: -r.score)
    missed = [r for r in rows if r.sample.label == DEFECT and r.decision == OK][::-1]
    false_alarms = [r for r in rows if r.sample.label == GOOD and r.decision == NG]
    detected = [r for r in rows if r.decision == NG and r.sample.label != GOOD]
    chosen, seen = [], set()
    for group in (detected, missed, false_alarms, rows):
        for r in group[: max(1, n // 3)]:
            if r.sample.path not in seen and len(chosen) < n:
                chosen.append(r)
                seen.add(r.sample.path)
    return chosen
