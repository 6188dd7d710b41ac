"""The verdict message every line output sends: one JSON object per inspected frame.

Schema ``inspector.verdict/1`` (docs/line-outputs/README.md): ``schema``, ``id``, ``station``,
``frame``, ``frame_name``, ``source``, ``time`` (ISO 8601, UTC, milliseconds), ``decision``
(``OK``, ``NG``, or ``ERROR`` for a frame that could not be judged, which the line rejects as NG),
``score`` and ``threshold`` (numbers, or null when not a number), ``model``, ``version``,
``rule`` (what decided) and ``error`` (why it could not be judged, else null), ``stored``.

``id`` is ``<store id>:<result id>`` for a stored result: the same verdict sent again (after a
restart, a lost acknowledgement) has the same id, so a receiver drops duplicates by it. A verdict
the store could not keep (disk full) is sent all the same, with ``stored`` false and an id of its
own: the line must hear about that part, and hear NG.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import uuid
from typing import Any

from inspector.engine.decision import NG, OK
from inspector.engine.results_store import InspectionRow

SCHEMA = "inspector.verdict/1"
ERROR = "ERROR"  # not judged: rejected by the line like NG
STATION_STATES = ("ready", "busy", "source-lost", "error", "offline")


def iso_time(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def line_decision(decision: str, error: str | None, score: float | None, threshold: float | None) -> str:
    """OK only for a judged frame whose finite score the store kept as OK; ERROR when it could not
    be judged; NG otherwise (fail closed)."""
    if error:
        return ERROR
    if decision == OK and _number(score) is not None and _number(threshold) is not None:
        return OK
    return NG


def verdict(row: InspectionRow, station: str, store_id: str) -> dict[str, Any]:
    """The message for a stored result."""
    return {
        "schema": SCHEMA,
        "id": f"{store_id}:{row.id}",
        "station": station,
        "frame": row.frame_id,
        "frame_name": row.frame_name,
        "source": row.source,
        "time": iso_time(row.time),
        "decision": line_decision(row.decision, row.error, row.score, row.threshold),
        "score": _number(row.score),
        "threshold": _number(row.threshold),
        "model": row.model,
        "version": row.model_version,
        "rule": row.rule,
        "error": row.error,
        "stored": True,
    }


def unstored_verdict(station: str, *, frame_id: int, frame_name: str, source: str, timestamp: float, model: str,
                     model_version: int, score: float, threshold: float, decision: str, why: str,
                     error: str | None = None, rule: str | None = None) -> dict[str, Any]:
    """The message for a result the store could not keep: NG (or ERROR), never OK, since what
    is not on record cannot be trusted later."""
    judged = line_decision(decision, error, score, threshold)
    return {
        "schema": SCHEMA,
        "id": f"unstored:{uuid.uuid4().hex}",
        "station": station,
        "frame": int(frame_id),
        "frame_name": frame_name,
        "source": source,
        "time": iso_time(timestamp),
        "decision": ERROR if judged == ERROR else NG,
        "score": _number(score),
        "threshold": _number(threshold),
        "model": model,
        "version": int(model_version),
        "rule": rule,
        "error": error or why,
        "stored": False,
    }


def test_verdict(station: str) -> dict[str, Any]:
    """A message to check the wiring (the Line I/O panel's *Send test verdict*): decision NG, so a
    receiver that ignores ``test`` still rejects rather than passes a part."""
    return {
        "schema": SCHEMA, "id": f"test:{uuid.uuid4().hex}", "station": station, "frame": -1, "frame_name": "", "source": "test",
        "time": iso_time(time.time()), "decision": NG, "score": None, "threshold": None, "model": "", "version": 0,
        "rule": "test verdict", "error": None, "stored": False, "test": True,
    }


def encode(message: dict[str, Any]) -> bytes:
    """Compact JSON (no NaN: numbers that are not finite are already null)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
