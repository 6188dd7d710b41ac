"""A model's details as the Models page shows them: a registry version (method, data, training,
threshold and how it was chosen, lineage, calibration) or an exported model (where it came
from, what runs it, its stored parity). Plain HTML from the model's metadata, no widgets."""

from __future__ import annotations

import html
import math

from inspector.engine.exported import parity_lines
from inspector.engine.threshold import ThresholdMode
from inspector.gui.formatting import percent


def quality(info) -> str:
    """Synthetic AUROC, and the false-alarm rate at this version's threshold (as measured when it was set)."""
    cal = info.metrics.get("calibration", {})
    auroc = cal.get("synthetic_image_auroc")
    far = cal.get("holdout_false_alarm_rate")
    stats = info.threshold.stats
    if info.threshold.method == ThresholdMode.MANUAL and stats.get("false_alarm_rate") is not None:
        far = stats["false_alarm_rate"]
    parts = []
    if auroc is not None and math.isfinite(auroc):
        parts.append(f"synth. AUROC {auroc:.3f}")
    if far is not None and math.isfinite(far):
        parts.append(f"false alarms {percent(far)}")
    if info.threshold.method == ThresholdMode.MANUAL and stats.get("recall") is not None and math.isfinite(stats["recall"]):
        parts.append(f"{'synth. ' if stats.get('synthetic_defects') else ''}recall {100 * stats['recall']:.0f} %")
    return " · ".join(parts)


def local_time(iso: str) -> str:
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def describe_threshold(t) -> str:
    """How a stored threshold was chosen, in words."""
    p = t.params
    if t.method == ThresholdMode.GOOD_QUANTILE:
        return f"{t.value:.6g} — allows {100 * p.get('false_alarm_rate', float('nan')):.1f} % false alarms on {p.get('n_good', '?')} held-out good images"
    if t.method in (ThresholdMode.SYNTHETIC_F1, ThresholdMode.LABELLED_F1):
        kind = "synthetic" if t.method == ThresholdMode.SYNTHETIC_F1 else "labelled"
        cap = 100 * p.get("max_false_alarm_rate", float("nan"))
        return f"{t.value:.6g} — best F1 on {kind} defects, false alarms capped at {cap:.1f} %"
    if t.method == ThresholdMode.MANUAL:
        previous = p.get("previous") or {}
        was = f" (was {previous['value']:.6g}, {previous.get('method', '?')})" if "value" in previous else ""
        on = f" looking at {p['dataset']}" if p.get("dataset") else ""
        return f"{t.value:.6g} — set by hand{on}{was}"
    return f"{t.value:.6g} — {t.method}"


def model_html(entry, parents: dict[str, str | None]) -> str:
    """A registry version's details; ``parents`` maps each known ref to its parent's, for the lineage."""
    info = entry.info
    t = info.threshold
    e = html.escape
    lineage = [info.ref]
    parent = info.parent
    while parent and len(lineage) < 50:  # bounded: a damaged registry may hold a cycle
        lineage.append(parent)
        parent = parents.get(parent)
    training = info.training
    config = training.get("config", {})
    rows = [
        ("Method", info.method),
        ("Created", local_time(info.created)),
        ("File", str(entry.path)),
        ("Lineage", " ← ".join(lineage)),
        ("Input", f"{info.image_size} × {info.image_size} px, {'gray' if info.channels == 1 else 'RGB'}"),
        ("Trained on", f"{training.get('dataset', '–')} ({training.get('n_train', '?')} images, {training.get('n_holdout', '?')} held out)"
                       f" · fingerprint {training.get('fingerprint', '–')}"),
        ("Training", f"{config.get('epochs', '?')} epochs, batch {config.get('batch_size', '?')}, seed {config.get('seed', '?')}"
                     f" on {training.get('device', '?')}{', ' + training['precision'] if 'precision' in training else ''}"
                     f" in {training.get('duration_s', '?')} s"),
        ("Threshold", describe_threshold(t)),
    ]
    if info.notes and t.method != ThresholdMode.MANUAL:  # a manual threshold's note says what the Threshold row says
        rows.append(("Notes", info.notes))
    metrics = "".join(
        f"<tr><td>{e(k)}</td><td>{e(_fmt(v))}</td></tr>" for k, v in info.metrics.get("calibration", {}).items()
    )
    params = ", ".join(f"{k}={v}" for k, v in info.config.items())
    return (
        f"<h3>{e(info.ref)}</h3>{_table(rows)}"
        f"<h4>Calibration (held-out good images and synthetic defects)</h4><table cellspacing=4>{metrics or '<tr><td>–</td></tr>'}</table>"
        f"<h4>Hyper-parameters</h4><p>{e(params)}</p>"
    )


def exported_html(exported, runtime: str) -> str:
    """An exported model's details: where it came from, what runs it, its threshold and the
    parity stored when it was written (``engine.exported.parity_lines``)."""
    e = html.escape
    info, export = exported.info, exported.export
    by = export.get("exported_by")
    rows = [
        ("Folder", str(exported.path)),
        ("Exported from", f"{export.get('source', '–')} on {local_time(str(export.get('created', '–')))}"
                          f" by inspector {by.get('inspector', '?') if isinstance(by, dict) else '?'}"),
        ("Format", f"{exported.format}, {exported.precision}; runs here on {runtime}"
                   f" (installed for it: {', '.join(exported.runtimes()) or 'none'})"),
        ("Method", info.method),
        ("Input", f"{info.image_size} × {info.image_size} px, {'gray' if info.channels == 1 else 'RGB'}"),
        ("Threshold", describe_threshold(info.threshold)),
        ("Region rules", info.rules.describe() if info.rules is not None else "none (the score alone decides)"),
    ]
    return (
        f"<h3>{e(info.ref)} (exported)</h3>{_table(rows)}"
        f"<h4>Parity with the trained model (measured when exported)</h4><pre>{e(chr(10).join(parity_lines(exported.parity)))}</pre>"
        "<p>An exported model is read-only: its threshold and rules are those its parity was measured with, and it has "
        "no training weights to fine-tune. Change them on the trained model and export it again.</p>"
    )


def _table(rows: list[tuple[str, str]]) -> str:
    return "<table cellspacing=4>" + "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>" for k, v in rows) + "</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
