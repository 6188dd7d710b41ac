"""The results store: every inspection verdict in an SQLite database, NG frames as images beside it.

``<data dir>/results/results.sqlite`` by default (``--db`` elsewhere); the images go to the
folder ``<db stem>-images/<YYYY-MM-DD>/`` next to the database. Written for the line:

* WAL journal: the live loop writes while the history view (or ``inspector history`` in another
  process) reads, and a killed process leaves a database that opens with every committed row.
  ``synchronous=NORMAL`` (the default) survives the app being killed at any moment; ``FULL``
  also survives a power cut, at the cost of an fsync per result.
* The image of a result is written (atomically: temp file + rename) *before* its row is
  committed, so every committed row that names an image has that image. A crash between the two
  can leave an image without a row; never a row without its image.
* ``record`` returns only after the commit: the live loop shows a result as done after that.

No torch and no Qt here: ``inspector history`` stays quick to start.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from inspector.data.images import read_image, write_image
from inspector.engine import paths

SCHEMA_VERSION = 1
FEEDBACK_VALUES = ("false_alarm", "confirmed")  # "good — false alarm", "defect — confirmed"
DECISIONS = ("OK", "NG")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inspections (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    time          REAL    NOT NULL,            -- unix time (UTC seconds) of the capture
    source        TEXT    NOT NULL,
    frame_id      INTEGER NOT NULL,
    frame_name    TEXT    NOT NULL DEFAULT '',  -- file name for a watched folder
    model         TEXT    NOT NULL,            -- registry name (or file name)
    model_version INTEGER NOT NULL,
    score         REAL    NOT NULL,
    threshold     REAL    NOT NULL,
    decision      TEXT    NOT NULL CHECK (decision IN ('OK', 'NG')),
    feedback      TEXT             CHECK (feedback IS NULL OR feedback IN ('false_alarm', 'confirmed')),
    feedback_time REAL,
    image         TEXT,                        -- path relative to the database's folder
    roi           TEXT    NOT NULL DEFAULT '', -- 'x,y,w,h' of the inspected region, '' = whole frame
    latency_ms    REAL
);
CREATE INDEX IF NOT EXISTS inspections_time ON inspections (time);
CREATE INDEX IF NOT EXISTS inspections_decision ON inspections (decision, time);
CREATE INDEX IF NOT EXISTS inspections_model ON inspections (model, model_version, time);
"""


class StoreError(Exception):
    pass


@dataclass
class InspectionRow:
    id: int
    time: float
    source: str
    frame_id: int
    frame_name: str
    model: str
    model_version: int
    score: float
    threshold: float
    decision: str
    feedback: str | None
    feedback_time: float | None
    image: str | None
    roi: str
    latency_ms: float | None

    @property
    def model_ref(self) -> str:
        return f"{self.model}@v{self.model_version}" if self.model_version else self.model

    @property
    def when(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.time).astimezone()

    def to_dict(self) -> dict:
        return asdict(self)


_COLUMNS = [f.name for f in fields(InspectionRow)]


def default_db_path() -> Path:
    return paths.data_dir() / "results" / "results.sqlite"


def images_dir_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.stem + "-images")


def parse_time(text: str | float | dt.datetime | None, now: float | None = None) -> float | None:
    """Unix time from an ISO date/time (local time unless it says otherwise), a datetime, a
    number, or a span back from now: ``30m``, ``2h``, ``1d``, ``1w``."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        return float(text)
    if isinstance(text, dt.datetime):
        return (text if text.tzinfo else text.astimezone()).timestamp()
    s = str(text).strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if len(s) > 1 and s[-1].lower() in units and s[:-1].replace(".", "", 1).isdigit():
        return (now if now is not None else time.time()) - float(s[:-1]) * units[s[-1].lower()]
    if s.lower() == "today":
        return dt.datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    try:
        when = dt.datetime.fromisoformat(s)
    except ValueError:
        raise StoreError(f"cannot read time '{text}': use an ISO date/time (2024-05-01, 2024-05-01T08:00) or 30m, 2h, 1d, today") from None
    return (when if when.tzinfo else when.astimezone()).timestamp()


class ResultsStore:
    """One SQLite database of inspection results (thread-safe: one connection behind a lock)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        save_ok_every: int = 0,
        image_format: str = ".png",
        synchronous: str = "NORMAL",
        readonly: bool = False,
    ) -> None:
        """``save_ok_every``: keep the image of every N-th OK frame too (0 = none, 1 = all);
        NG frames are always kept."""
        self.path = Path(path) if path else default_db_path()
        self.images_dir = images_dir_for(self.path)
        self.save_ok_every = max(0, int(save_ok_every))
        self.image_format = image_format if image_format.startswith(".") else "." + image_format
        self._ok_count = 0
        self._lock = threading.RLock()
        if readonly:
            if not self.path.is_file():
                raise StoreError(f"no results database at {self.path}")
            self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=10)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        try:
            self._setup(readonly, synchronous)
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise StoreError(f"{self.path} is not a usable results database: {e}") from None

    def _setup(self, readonly: bool, synchronous: str) -> None:
        self._db.execute("PRAGMA busy_timeout = 10000")
        if readonly:
            return
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: the file system does not support SQLite's WAL mode ({mode})")
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer inspector (schema {version})")
        with self._lock:
            self._db.executescript("BEGIN;" + _SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

    # --- writing -------------------------------------------------------------------------------
    def record(
        self,
        *,
        source: str,
        frame_id: int,
        model: str,
        model_version: int,
        score: float,
        threshold: float,
        decision: str,
        image: np.ndarray | None = None,
        timestamp: float | None = None,
        frame_name: str = "",
        roi: Sequence[int] | None = None,
        latency_ms: float | None = None,
    ) -> int:
        """Store one result and commit; returns its id. The image is kept for NG (and sampled OK)
        frames and written before the row is committed."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be OK or NG, got {decision!r}")
        timestamp = time.time() if timestamp is None else timestamp
        rel = None
        if image is not None and self._keep_image(decision):
            rel = self._save_image(image, timestamp, frame_id, decision)
        roi_text = ",".join(str(int(v)) for v in roi) if roi else ""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO inspections (time, source, frame_id, frame_name, model, model_version, score, threshold,"
                " decision, image, roi, latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (timestamp, source, int(frame_id), frame_name, model, int(model_version), float(score), float(threshold),
                 decision, rel, roi_text, latency_ms),
            )  # autocommit mode: committed when execute returns
            return int(cur.lastrowid)

    def _keep_image(self, decision: str) -> bool:
        if decision == "NG":
            return True
        if not self.save_ok_every:
            return False
        self._ok_count += 1
        return self._ok_count % self.save_ok_every == 1 or self.save_ok_every == 1

    def _save_image(self, image: np.ndarray, timestamp: float, frame_id: int, decision: str) -> str:
        when = dt.datetime.fromtimestamp(timestamp)
        rel = Path(when.strftime("%Y-%m-%d")) / f"{when:%H%M%S}-{frame_id}-{decision}-{uuid.uuid4().hex[:8]}{self.image_format}"
        _write_frame(self.images_dir / rel, image)
        return (Path(self.images_dir.name) / rel).as_posix()

    def set_feedback(self, row_id: int, feedback: str | None, image: np.ndarray | None = None) -> InspectionRow:
        """Mark a result ``false_alarm`` or ``confirmed`` (None clears it). When the row has no
        image yet (an OK frame that was not sampled) and ``image`` is given, it is kept now."""
        if feedback is not None and feedback not in FEEDBACK_VALUES:
            raise ValueError(f"feedback must be one of {FEEDBACK_VALUES} or None, got {feedback!r}")
        row = self.get(row_id)
        rel = row.image
        if rel is None and image is not None:
            rel = self._save_image(image, row.time, row.frame_id, row.decision)
        with self._lock:
            self._db.execute(
                "UPDATE inspections SET feedback = ?, feedback_time = ?, image = ? WHERE id = ?",
                (feedback, time.time() if feedback else None, rel, row_id),
            )
        return self.get(row_id)

    # --- reading -------------------------------------------------------------------------------
    def get(self, row_id: int) -> InspectionRow:
        with self._lock:
            row = self._db.execute("SELECT * FROM inspections WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            raise StoreError(f"no inspection with id {row_id} in {self.path}")
        return _row(row)

    def query(
        self,
        since: str | float | dt.datetime | None = None,
        until: str | float | dt.datetime | None = None,
        decision: str | None = None,
        model: str | None = None,
        source: str | None = None,
        feedback: str | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[InspectionRow]:
        """Results filtered by time range, decision (OK/NG), model (``name`` or ``name@vN``),
        source and feedback (``false_alarm``, ``confirmed``, ``any`` or ``none``)."""
        where, args = self._where(since, until, decision, model, source, feedback)
        sql = "SELECT * FROM inspections" + where + f" ORDER BY time {'DESC' if newest_first else 'ASC'}, id {'DESC' if newest_first else 'ASC'}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            return [_row(r) for r in self._db.execute(sql, args).fetchall()]

    def count(self, **filters) -> dict[str, int]:
        """``{"total": n, "OK": n, "NG": n}`` for the same filters as ``query``."""
        where, args = self._where(**filters)
        with self._lock:
            rows = self._db.execute(f"SELECT decision, COUNT(*) FROM inspections{where} GROUP BY decision", args).fetchall()
        counts = {"OK": 0, "NG": 0}
        counts.update({d: n for d, n in rows})
        counts["total"] = counts["OK"] + counts["NG"]
        return counts

    def models(self) -> list[str]:
        """Every ``name@vN`` that has results, for filter menus."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT model, model_version FROM inspections ORDER BY model, model_version").fetchall()
        return [f"{m}@v{v}" if v else m for m, v in rows]

    def _where(self, since=None, until=None, decision=None, model=None, source=None, feedback=None) -> tuple[str, list]:
        clauses, args = [], []
        start, end = parse_time(since), parse_time(until)
        if start is not None:
            clauses.append("time >= ?")
            args.append(start)
        if end is not None:
            clauses.append("time <= ?")
            args.append(end)
        if decision:
            decision = decision.upper()
            if decision not in DECISIONS:
                raise StoreError(f"decision must be OK or NG, got '{decision}'")
            clauses.append("decision = ?")
            args.append(decision)
        if model:
            name, _, version = model.partition("@")
            clauses.append("model = ?")
            args.append(name)
            if version:
                number = version.lstrip("vV")
                if not number.isdigit():
                    raise StoreError(f"bad model version in '{model}' (use name@vN)")
                clauses.append("model_version = ?")
                args.append(int(number))
        if source:
            clauses.append("source = ?")
            args.append(source)
        if feedback:
            if feedback == "any":
                clauses.append("feedback IS NOT NULL")
            elif feedback == "none":
                clauses.append("feedback IS NULL")
            elif feedback in FEEDBACK_VALUES:
                clauses.append("feedback = ?")
                args.append(feedback)
            else:
                raise StoreError(f"feedback filter must be one of {FEEDBACK_VALUES + ('any', 'none')}")
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    def image_path(self, row: InspectionRow) -> Path | None:
        return self.path.parent / row.image if row.image else None

    def load_image(self, row: InspectionRow) -> np.ndarray | None:
        path = self.image_path(row)
        return read_image(path) if path is not None else None

    # --- export and upkeep --------------------------------------------------------------------
    def export_csv(self, destination: str | os.PathLike[str], rows: Iterable[InspectionRow] | None = None, **filters) -> int:
        """Write results as CSV (local ISO times, absolute image paths); returns the row count."""
        rows = list(rows) if rows is not None else self.query(newest_first=False, **filters)
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        header = ["id", "time", "source", "frame_id", "frame_name", "model", "model_version", "score", "threshold",
                  "decision", "feedback", "image", "roi", "latency_ms"]
        tmp = destination.with_name(f".{destination.name}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for r in rows:
                image = self.image_path(r)
                writer.writerow([
                    r.id, r.when.isoformat(timespec="milliseconds"), r.source, r.frame_id, r.frame_name, r.model,
                    r.model_version, f"{r.score:.6g}", f"{r.threshold:.6g}", r.decision, r.feedback or "",
                    str(image) if image else "", r.roi, "" if r.latency_ms is None else f"{r.latency_ms:.1f}",
                ])
        os.replace(tmp, destination)
        return len(rows)

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _write_frame(path: Path, image: np.ndarray) -> None:
    """Like ``write_image`` (temp file + rename) but quick, as it runs once per NG frame on the
    live path: a colour frame whose channels are all equal (a mono camera read through OpenCV)
    is kept as gray, and PNG uses light compression (3x faster than the default, ~15% larger)."""
    import cv2

    if image.ndim == 3 and image.shape[2] == 3:
        if np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 1], image[:, :, 2]):
            image = image[:, :, 0]
    if path.suffix.lower() != ".png":
        write_image(path, image)
        return
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise StoreError(f"could not encode the image of {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        tmp.write_bytes(encoded.tobytes())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _row(row: sqlite3.Row) -> InspectionRow:
    return InspectionRow(**{k: row[k] for k in _COLUMNS})
