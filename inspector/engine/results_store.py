"""The results store: every inspection verdict in an SQLite database, NG frames as images beside it.

``<data dir>/results/results.sqlite`` by default (``--db`` elsewhere); the images go to the
folder ``<db stem>-images/<YYYY-MM-DD>/`` next to the database. Written for the line:

* WAL journal: the live loop writes while the history view (or ``inspector history`` in another
  process) reads, and a killed process leaves a database that opens with every committed row.
  ``synchronous=NORMAL`` (the default) survives the app being killed at any moment; ``FULL``
  also survives a power cut, at the cost of an fsync per result.
* The image of a result is written (atomically, through ``inspector.atomic``) *before* its row
  is committed, so every committed row that names an image has that image. With ``FULL`` the
  image is fsynced before the commit too. A crash between the two can leave an image without a
  row; never a row without its image. A failed commit removes the image it had written.
* ``record`` returns only after the commit: the live loop shows a result as done after that. Any
  failure to store (disk full, database locked, images folder not writable) is one ``StoreError``
  line whose ``kind`` says ``image`` or ``database``: the caller knows the result is not stored.
* A score or threshold that is not a number is stored as NULL (shown as ``nan``) and its
  decision is always NG (``engine.decision``: fail closed); ``+-inf`` are stored as they are. A
  frame that could not be scored at all is stored as NG with the reason in ``error``.

No torch and no Qt here: ``inspector history`` stays quick to start.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from inspector.atomic import open_atomic, remove_stale_temp_files, write_bytes_atomic
from inspector.data.images import read_image
from inspector.engine import paths
from inspector.engine.decision import NG
from inspector.engine.modelref import ModelRef, ModelRefError, ref_text
from inspector.engine.regions import Region

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4  # 2: score and threshold may be NULL (not a number), an ``error`` column; 3: ``regions``, ``rule``;
# 4: the outbox's ``deliveries`` (each line output's place in the results) and ``store_meta`` (the store's id)
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
    score         REAL,                        -- NULL: not a number (NaN); always NG then
    threshold     REAL,                        -- NULL: not a number (NaN); always NG then
    decision      TEXT    NOT NULL CHECK (decision IN ('OK', 'NG')),
    feedback      TEXT             CHECK (feedback IS NULL OR feedback IN ('false_alarm', 'confirmed')),
    feedback_time REAL,
    image         TEXT,                        -- path relative to the database's folder
    roi           TEXT    NOT NULL DEFAULT '', -- 'x,y,w,h' of the inspected region, '' = whole frame
    latency_ms    REAL,
    error         TEXT,                        -- why the frame could not be scored (NULL: it was)
    regions       TEXT,                        -- JSON list of the defect regions, in the ROI's pixels (NULL: not recorded)
    rule          TEXT                         -- which rule decided (NULL: not recorded)
);
CREATE INDEX IF NOT EXISTS inspections_time ON inspections (time);
CREATE INDEX IF NOT EXISTS inspections_decision ON inspections (decision, time);
CREATE INDEX IF NOT EXISTS inspections_model ON inspections (model, model_version, time);
"""


# The outbox: every committed result is a verdict to deliver; each line output (sink) keeps the
# id of the newest result it delivered and had acknowledged, so it resumes there after a kill.
_OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    sink     TEXT    PRIMARY KEY,   -- the sink's address (the same address resumes where it stopped)
    last_id  INTEGER NOT NULL,      -- the newest result delivered and acknowledged, in id order
    updated  REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL             -- 'store_id': makes verdict ids unique across stores
);
"""


# Schema 1 had ``score``/``threshold`` NOT NULL (a NaN score dropped the whole row) and no
# ``error``: rebuild the table (SQLite cannot drop a NOT NULL) keeping every row and its id.
_MIGRATE_1_TO_2 = """
ALTER TABLE inspections RENAME TO inspections_v1;
DROP INDEX IF EXISTS inspections_time;
DROP INDEX IF EXISTS inspections_decision;
DROP INDEX IF EXISTS inspections_model;
""" + _SCHEMA + """
INSERT INTO inspections (id, time, source, frame_id, frame_name, model, model_version, score, threshold, decision,
                         feedback, feedback_time, image, roi, latency_ms)
    SELECT id, time, source, frame_id, frame_name, model, model_version, score, threshold, decision,
           feedback, feedback_time, image, roi, latency_ms FROM inspections_v1;
DROP TABLE inspections_v1;
"""

# Schema 2 lacked the defect regions and the deciding rule: two columns, NULL in the old rows.
_MIGRATE_2_TO_3 = """
ALTER TABLE inspections ADD COLUMN regions TEXT;
ALTER TABLE inspections ADD COLUMN rule TEXT;
"""


class StoreError(Exception):
    """The store cannot do what was asked (one line). ``kind``: ``image`` (the image could not be
    written), ``database`` (the row could not be committed), or ``query`` (a bad filter etc.)."""

    def __init__(self, message: str, kind: str = "query") -> None:
        super().__init__(message)
        self.kind = kind


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
    error: str | None = None  # why the frame could not be scored (then score is nan, decision NG)
    regions: list[dict] | None = None  # the defect regions (Region.to_dict), largest first; None: not recorded
    rule: str | None = None  # which rule decided (None: not recorded)

    def region_list(self) -> list[Region]:
        return [Region.from_dict(r) for r in self.regions or []]

    @property
    def model_ref(self) -> str:
        return ref_text(self.model, self.model_version or None)

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
        busy_timeout_s: float = 10.0,
    ) -> None:
        """``save_ok_every``: keep the image of every N-th OK frame too (0 = none, 1 = all);
        NG frames are always kept. ``synchronous="FULL"`` fsyncs each image and each commit
        (survives a power cut). ``busy_timeout_s``: how long a write waits for another process
        holding the database before it fails as not stored."""
        self.path = Path(path) if path else default_db_path()
        self.images_dir = images_dir_for(self.path)
        self.save_ok_every = max(0, int(save_ok_every))
        self.image_format = image_format if image_format.startswith(".") else "." + image_format
        self._ok_count = 0
        self._lock = threading.RLock()
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self.durable = synchronous.upper() == "FULL"
        self.busy_timeout_s = max(0.0, float(busy_timeout_s))
        try:
            if readonly:
                if not self.path.is_file():
                    raise StoreError(f"no results database at {self.path}")
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                                           timeout=self.busy_timeout_s)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=self.busy_timeout_s,
                                           isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open the results database {self.path}: {e}", "database") from None
        self._db.row_factory = sqlite3.Row
        try:
            self._setup(readonly, synchronous)
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise StoreError(f"{self.path} is not a usable results database: {e}", "database") from None
        except BaseException:
            self._db.close()
            raise
        if not readonly:
            self._remove_stale_temp_files()

    def _remove_stale_temp_files(self) -> None:
        """Temp files of image writes cut short by a kill, in the newest day folders (where the
        last writes were): they never became results."""
        try:
            days = sorted(d for d in self.images_dir.iterdir() if d.is_dir() and not d.is_symlink())[-2:]
        except OSError:
            return
        for folder in days:
            for path in remove_stale_temp_files(folder):
                log.info("removed %s, an image write cut short", path)

    def _setup(self, readonly: bool, synchronous: str) -> None:
        self._db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        if readonly:
            return
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: the file system does not support SQLite's WAL mode ({mode})", "database")
        self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # one process migrates; another waits, then sees version 2
            try:
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(f"{self.path} was written by a newer inspector (schema {version})", "database")
                has_table = self._db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'inspections'").fetchone() is not None
                # 1 → 2 rebuilds the table as it is now (schema 3 included); 2 → 3 adds the columns
                script = {1: _MIGRATE_1_TO_2, 2: _MIGRATE_2_TO_3}.get(version, _SCHEMA) if has_table else _SCHEMA
                for statement in _statements(script) + _statements(_OUTBOX_SCHEMA):
                    self._db.execute(statement)
                self._db.execute("INSERT OR IGNORE INTO store_meta (key, value) VALUES ('store_id', ?)", (uuid.uuid4().hex[:12],))
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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
        image: np.ndarray | EncodedImage | None = None,
        timestamp: float | None = None,
        frame_name: str = "",
        roi: Sequence[int] | None = None,
        latency_ms: float | None = None,
        error: str | None = None,
        regions: Sequence[Region] | None = None,
        rule: str | None = None,
    ) -> int:
        """Store one result and commit; returns its id, or raises StoreError: then nothing of it
        is stored. The image (an array, or already encoded by ``encode``) is kept for NG (and
        sampled OK) frames and written before the row is committed. A score or threshold that is
        not finite, or an ``error`` (the frame could not be scored), makes the decision NG
        whatever was passed: what cannot be judged is never OK. ``regions`` (the prediction's,
        largest first) are kept as JSON, ``rule`` as given."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be OK or NG, got {decision!r}")
        score, threshold = _number(score), _number(threshold)
        if error is not None or not all(v is not None and math.isfinite(v) for v in (score, threshold)):
            decision = NG  # not a number, infinite, or not scored: fail closed
        timestamp = time.time() if timestamp is None else timestamp
        rel = None
        if image is not None and self._keep_image(decision):
            rel = self._save_image(image, timestamp, frame_id, decision)
        roi_text = ",".join(str(int(v)) for v in roi) if roi else ""
        regions_text = None if regions is None else json.dumps([r.to_dict() for r in regions], allow_nan=False)
        try:
            with self._lock:
                cur = self._db.execute(
                    "INSERT INTO inspections (time, source, frame_id, frame_name, model, model_version, score, threshold,"
                    " decision, image, roi, latency_ms, error, regions, rule) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (timestamp, source, int(frame_id), frame_name, model, int(model_version), score, threshold,
                     decision, rel, roi_text, latency_ms, error, regions_text, rule),
                )  # autocommit mode: committed when execute returns
                return int(cur.lastrowid)
        except sqlite3.Error as e:
            if rel is not None:  # no row names it: do not leave it behind
                (self.path.parent / rel).unlink(missing_ok=True)
            raise StoreError(f"result of frame {frame_id} not stored: the database {self.path.name} failed: {e}",
                             "database") from e

    def _keep_image(self, decision: str) -> bool:
        if decision == NG:
            return True
        if not self.save_ok_every:
            return False
        self._ok_count += 1
        return self._ok_count % self.save_ok_every == 1 or self.save_ok_every == 1

    def encode(self, image: np.ndarray) -> EncodedImage:
        """``image`` encoded as this store keeps it (ValueError when it cannot be), for ``record``."""
        return encode_image(image, self.image_format)

    def _save_image(self, image: np.ndarray | EncodedImage, timestamp: float, frame_id: int, decision: str) -> str:
        when = dt.datetime.fromtimestamp(timestamp)
        rel = Path(when.strftime("%Y-%m-%d")) / f"{when:%H%M%S}-{frame_id}-{decision}-{uuid.uuid4().hex[:8]}{self.image_format}"
        try:
            _write_frame(self.images_dir / rel, image, fsync=self.durable)
        except (OSError, ValueError) as e:
            raise StoreError(f"result of frame {frame_id} not stored: cannot write its image under {self.images_dir}: "
                             f"{e.strerror if isinstance(e, OSError) and e.strerror else e}", "image") from e
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
        try:
            with self._lock:
                self._db.execute(
                    "UPDATE inspections SET feedback = ?, feedback_time = ?, image = ? WHERE id = ?",
                    (feedback, time.time() if feedback else None, rel, row_id),
                )
        except sqlite3.Error as e:
            if rel is not None and row.image is None:
                (self.path.parent / rel).unlink(missing_ok=True)
            raise StoreError(f"feedback on result {row_id} not stored: the database {self.path.name} failed: {e}",
                             "database") from e
        return self.get(row_id)

    # --- the outbox --------------------------------------------------------------------------
    @property
    def store_id(self) -> str:
        """This database's own id (made once): verdict ids are ``<store_id>:<result id>``."""
        with self._lock:
            row = self._db.execute("SELECT value FROM store_meta WHERE key = 'store_id'").fetchone()
        if row is None:
            raise StoreError(f"{self.path} has no store id (opened read-only before schema 4?)")
        return str(row[0])

    def open_delivery(self, sink: str) -> int:
        """The id of the newest result ``sink`` has delivered. A sink seen for the first time
        starts after the newest result stored now (it is committed before any frame of the run
        is stored, so nothing from then on can be missed)."""
        try:
            with self._lock:
                self._db.execute("INSERT OR IGNORE INTO deliveries (sink, last_id, updated) "
                                 "SELECT ?, COALESCE(MAX(id), 0), ? FROM inspections", (sink, time.time()))
                return int(self._db.execute("SELECT last_id FROM deliveries WHERE sink = ?", (sink,)).fetchone()[0])
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the outbox of {sink} in {self.path.name}: {e}", "database") from e

    def pending(self, after_id: int, limit: int = 64) -> list[InspectionRow]:
        """Results after ``after_id``, oldest first: what a sink at that place delivers next."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM inspections WHERE id > ? ORDER BY id LIMIT ?", (int(after_id), int(limit))).fetchall()
        return [_row(r) for r in rows]

    def acknowledge(self, sink: str, row_id: int) -> None:
        """``sink`` delivered every result up to ``row_id`` and had it acknowledged."""
        try:
            with self._lock:
                self._db.execute("UPDATE deliveries SET last_id = ?, updated = ? WHERE sink = ? AND last_id < ?",
                                 (int(row_id), time.time(), sink, int(row_id)))
        except sqlite3.Error as e:
            raise StoreError(f"cannot record the delivery of result {row_id} to {sink}: {e}", "database") from e

    def backlog(self, after_id: int) -> int:
        """How many results are stored after ``after_id`` (a sink's undelivered verdicts)."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM inspections WHERE id > ?", (int(after_id),)).fetchone()[0])

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
        return [ref_text(m, v or None) for m, v in rows]

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
            try:
                ref = ModelRef.parse(model)
            except ModelRefError as e:
                raise StoreError(f"model filter: {e}") from None
            clauses.append("model = ?")
            args.append(ref.name)
            if ref.version is not None:
                clauses.append("model_version = ?")
                args.append(ref.version)
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
        """Write results as CSV (local ISO times, absolute image paths, ``nan`` for a score that
        is not a number); returns the row count. Text cells are made safe for spreadsheets."""
        rows = list(rows) if rows is not None else self.query(newest_first=False, **filters)
        header = ["id", "time", "source", "frame_id", "frame_name", "model", "model_version", "score", "threshold",
                  "decision", "feedback", "image", "roi", "latency_ms", "error", "regions", "largest_area_px", "rule"]
        text = {"source", "frame_name", "model", "feedback", "image", "roi", "error", "rule"}

        def lines():
            for r in rows:
                image = self.image_path(r)
                yield [
                    r.id, r.when.isoformat(timespec="milliseconds"), r.source, r.frame_id, r.frame_name, r.model,
                    r.model_version, f"{r.score:.6g}", f"{r.threshold:.6g}", r.decision, r.feedback or "",
                    str(image) if image else "", r.roi, "" if r.latency_ms is None else f"{r.latency_ms:.1f}", r.error or "",
                    "" if r.regions is None else len(r.regions),
                    "" if not r.regions else max(int(x.get("area_px", 0)) for x in r.regions), r.rule or "",
                ]

        write_csv(destination, header, lines(), text_columns=text)
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


# --- CSV for spreadsheets --------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: object) -> str:
    """A text cell a spreadsheet will not run as a formula: one beginning with ``=``, ``+``,
    ``-``, ``@``, tab or CR gets a leading single quote (the OWASP rule). Only for text columns:
    numbers are written as they are, so a negative score stays a number."""
    text = "" if text is None else str(text)
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_csv(destination: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Sequence],
              text_columns: Iterable[str] = ()) -> None:
    """Write a CSV file atomically (the old file stays until the new one is complete), making the
    cells of ``text_columns`` spreadsheet-safe. The one CSV writer of ``history`` and ``predict``."""
    text = {header.index(c) for c in text_columns if c in header}
    with open_atomic(destination, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([spreadsheet_safe(v) if i in text else v for i, v in enumerate(row)])


@dataclass(frozen=True)
class EncodedImage:
    """A result image already encoded (``ResultsStore.encode``): ``record`` writes it as is, so
    that encoding can be done, or timed, apart from the write (``bench/live.py``'s profile)."""

    data: bytes
    suffix: str


def encode_image(image: np.ndarray, suffix: str) -> EncodedImage:
    """Encode one result image, quickly, as it runs once per NG frame on the live path: a colour
    frame whose channels are all equal (a mono camera read through OpenCV) is kept as gray, and
    PNG uses light compression (3x faster than the default, ~15% larger) with one row filter for
    every row (``UP``: 1.6-1.9x faster than choosing a filter per row, the same size on camera
    frames, solar cells and colour images; ``bench/notes/history.md``). ValueError when it cannot
    be encoded."""
    import cv2

    if image.dtype != np.uint8:
        raise ValueError(f"result images are 8-bit, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        if np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 1], image[:, :, 2]):
            image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    suffix = suffix.lower()
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    params: list[int] = []
    if suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
        if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # older OpenCV builds cannot set the filter
            params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    try:
        ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(bgr), params)
    except cv2.error as e:
        raise ValueError(f"cannot encode the image as {suffix}: {e}") from None
    if not ok:
        raise ValueError(f"cannot encode the image as {suffix}")
    return EncodedImage(encoded.tobytes(), suffix)


def _write_frame(path: Path, image: np.ndarray | EncodedImage, fsync: bool = True) -> None:
    """Write one result image through ``inspector.atomic`` (unique temp name, rename; fsynced
    unless ``fsync=False``), encoded for the path's suffix unless it already is."""
    if not isinstance(image, EncodedImage):
        image = encode_image(image, path.suffix)
    elif image.suffix != path.suffix.lower():
        raise ValueError(f"the image was encoded as {image.suffix}, the store keeps {path.suffix}")
    write_bytes_atomic(path, image.data, fsync=fsync)


def _number(value: float | None) -> float | None:
    """A float for SQLite; NaN (and None) become NULL, which reads back as nan."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _statements(script: str) -> list[str]:
    """The SQL statements of a script (no semicolons inside our statements or comments)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _row(row: sqlite3.Row) -> InspectionRow:
    values = {k: row[k] for k in _COLUMNS if k in row.keys()}  # an old database opened read-only lacks newer columns
    if values.get("regions") is not None:
        try:
            regions = json.loads(values["regions"])
        except (ValueError, RecursionError):
            regions = None
        ok = isinstance(regions, list) and all(isinstance(r, dict) for r in regions)
        values["regions"] = regions if ok else None
    for key in ("score", "threshold"):
        if values[key] is None:
            values[key] = math.nan
    return InspectionRow(**values)
