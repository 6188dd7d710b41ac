"""Hostile storage and outputs (issue 16): every live result that cannot be stored is counted,
shown and never reported as stored; images are on disk before their rows; non-finite scores
and model errors are recorded as NG; a ROI outside the frame stops live at once; CSV cells are
spreadsheet-safe; predict's overlays never collide. Real SQLite, real files, real failures."""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from inspector.atomic import is_temp_file, open_atomic, write_bytes_atomic
from inspector.cli import EXIT_NOT_STORED, main
from inspector.data.images import read_image, write_image
from inspector.data.sources import VideoFileSource, write_video
from inspector.engine.live import LiveInspector, RoiError
from inspector.engine.predictor import Predictor
from inspector.engine.results_store import SCHEMA_VERSION, ResultsStore, StoreError, spreadsheet_safe
from tests.conftest import make_part
from tests.test_live import fresh, typical_goods, unmistakable_defect

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def predictor(tiny_bundle):
    p = Predictor(fresh(tiny_bundle), "cpu")
    p.info.name, p.info.version = "tiny", 1
    return p


@pytest.fixture
def model_file(tiny_bundle, tmp_path):
    bundle = fresh(tiny_bundle)
    bundle.info.name, bundle.info.version = "", 0
    return bundle.save(tmp_path / "tiny.inspector")


def good_and_bad(predictor, pattern: str, seed: int = 3) -> list[np.ndarray]:
    """Frames for ``pattern`` ('g' = a clearly good part, 'b' = an unmistakable defect)."""
    rng = np.random.default_rng(seed)
    goods = iter(typical_goods(predictor, rng, pattern.count("g")))
    return [next(goods) if c == "g" else unmistakable_defect(predictor, rng) for c in pattern]


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if is_temp_file(p)]


def run_live(source, predictor, store, **kw):
    results, errors = [], []
    live = LiveInspector(source, predictor, store, on_result=results.append, on_error=errors.append, **kw)
    stats = live.run()
    return live, stats, results, errors


# --- 1. storage failures in live mode ---------------------------------------------------------------------
def test_results_whose_image_cannot_be_written_are_counted_and_never_reported_as_stored(predictor, tmp_path):
    db = tmp_path / "r.sqlite"
    store = ResultsStore(db)
    (tmp_path / "r-images").write_text("a file where the images folder should be")  # every image write fails
    video = write_video(tmp_path / "v.avi", good_and_bad(predictor, "gbgbg"))

    _, stats, results, errors = run_live(VideoFileSource(video), predictor, store)

    assert [r.decision for r in results] == ["OK", "NG", "OK", "NG", "OK"]
    assert [r.stored for r in results] == [True, False, True, False, True]  # OK frames keep no image: stored
    assert [r.record_id is None for r in results] == [False, True, False, True, False]
    assert all(r.store_error and "cannot write its image" in r.store_error for r in results if not r.stored)
    assert stats.inspected == 5 and stats.unsaved == 2 and stats.unjudged == 0
    assert "cannot write its image" in stats.store_alarm
    assert {e.kind for e in errors} == {"store-image"} and len(errors) == 2
    assert store.count() == {"OK": 3, "NG": 0, "total": 3}  # the two NG verdicts are not in the database
    assert temp_files(tmp_path) == []
    store.close()


def test_cli_live_with_unwritable_images_prints_not_stored_once_and_exits_4(model_file, predictor, tmp_home, tmp_path, capsys):
    inbox = tmp_path / "inbox"
    for i, image in enumerate(good_and_bad(predictor, "ggg")):
        write_image(inbox / f"part{i}.png", image)
    db = tmp_path / "r.sqlite"
    ResultsStore(db).close()
    (tmp_path / "r-images").write_text("occupied")
    code = main(["live", "--source", str(inbox), "--include-existing", "--model", str(model_file), "--db", str(db),
                 "--max-frames", "3", "--save-ok-every", "1", "--verbose", "--stats-every", "0"])
    out, err = capsys.readouterr()
    assert code == EXIT_NOT_STORED == 4
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.endswith("NOT STORED") and "#" not in line for line in lines)
    assert err.count("warning:") == 1, err  # the same failure three times: printed once
    assert "inspected 3, NG 0 (0.0 %), 3 NOT STORED" in err
    assert "3 results NOT stored" in err
    assert ResultsStore(db).count()["total"] == 0


def test_a_locked_database_fails_fast_counts_every_result_and_leaves_no_orphan_image(predictor, tmp_path):
    db = tmp_path / "r.sqlite"
    store = ResultsStore(db, busy_timeout_s=0.1)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        video = write_video(tmp_path / "v.avi", good_and_bad(predictor, "gbg"))
        _, stats, results, errors = run_live(VideoFileSource(video), predictor, store)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [r.stored for r in results] == [False, False, False] and stats.unsaved == 3
    assert {e.kind for e in errors} == {"store-database"}
    assert all("locked" in e.message for e in errors)
    images = tmp_path / "r-images"
    assert not images.exists() or [p for p in images.rglob("*") if p.is_file()] == []  # the NG image was taken back
    assert store.record(source="s", frame_id=0, model="m", model_version=1, score=0.1, threshold=1.0, decision="OK") == 1
    store.close()


def test_disk_full_mid_run_every_result_is_either_stored_with_its_image_or_counted(model_file, tmp_home, tmp_path):
    """A real 'disk full': the headless command under RLIMIT_FSIZE (writes past the limit fail with
    EFBIG), as a fresh interpreter. The database fills after a few results."""
    rng = np.random.default_rng(8)
    video = write_video(tmp_path / "loop.avi", [make_part(rng) for _ in range(10)])
    db = tmp_path / "full.sqlite"
    script = textwrap.dedent("""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (160_000, 160_000))
        from inspector.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    env = dict(os.environ, INSPECTOR_HOME=str(tmp_home), INSPECTOR_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", script, "live", "--source", str(video), "--loop", "--model", str(model_file), "--db", str(db),
         "--max-frames", "40", "--save-ok-every", "1", "--verbose", "--stats-every", "0"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == EXIT_NOT_STORED, proc.stderr
    printed = proc.stdout.splitlines()
    assert len(printed) == 40
    stored_ids = [int(line.rsplit("#", 1)[1]) for line in printed if not line.endswith("NOT STORED")]
    not_stored = sum(line.endswith("NOT STORED") for line in printed)
    assert stored_ids and not_stored, proc.stdout
    assert f"{not_stored} results NOT stored" in proc.stderr
    assert proc.stderr.count("warning:") <= 2, proc.stderr  # once per kind, not once per result
    assert sum("not stored:" in line for line in proc.stderr.splitlines()) <= 3, proc.stderr  # nor logged again

    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = con.execute("SELECT id, image FROM inspections ORDER BY id").fetchall()
    con.close()
    assert [r[0] for r in rows] == stored_ids  # exactly the results printed with an id are in the database
    for _, image in rows:
        assert read_image(db.parent / image).shape[:2] == (64, 64)
    assert temp_files(tmp_path) == []


# --- 2. durable: the image is on disk before its row ------------------------------------------------------------
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fsynced files")
def test_durable_store_fsyncs_each_image_before_its_row_is_committed(tmp_path, monkeypatch):
    db = tmp_path / "d.sqlite"
    store = ResultsStore(db, synchronous="FULL")
    real_fsync = os.fsync
    synced: list[tuple[str, int]] = []  # (file fsynced, rows committed at that moment)

    def spy(fd):
        real_fsync(fd)
        name = os.readlink(f"/proc/self/fd/{fd}")
        with sqlite3.connect(db) as reader:
            synced.append((name, reader.execute("SELECT COUNT(*) FROM inspections").fetchone()[0]))

    monkeypatch.setattr(os, "fsync", spy)
    image = np.full((16, 16), 90, np.uint8)
    for i in range(3):
        row = store.get(store.record(source="s", frame_id=i, model="m", model_version=1, score=2.0, threshold=1.0,
                                     decision="NG", image=image))
        temp_synced = [(n, count) for n, count in synced if is_temp_file(n)]
        assert len(temp_synced) == i + 1, synced  # the image's data, fsynced under its temp name...
        assert temp_synced[-1][1] == i  # ...before its row was committed
        assert store.image_path(row).is_file()
    monkeypatch.undo()
    store.close()

    fast = ResultsStore(tmp_path / "n.sqlite")  # NORMAL: no fsync per image, still atomic (unique temp names)
    synced.clear()
    monkeypatch.setattr(os, "fsync", spy)
    fast.record(source="s", frame_id=0, model="m", model_version=1, score=2.0, threshold=1.0, decision="NG", image=image)
    monkeypatch.undo()
    assert synced == [] and temp_files(tmp_path) == []
    fast.close()


def test_atomic_writes_keep_the_old_file_on_failure_and_use_unique_temp_names(tmp_path):
    target = tmp_path / "out" / "a.bin"
    write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError):
        with open_atomic(target, "wb") as f:
            f.write(b"half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old" and temp_files(tmp_path) == []

    def writer(n: int) -> None:
        for _ in range(20):
            write_bytes_atomic(target, bytes([n]) * 50_000, fsync=False)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    data = target.read_bytes()
    assert len(data) == 50_000 and len(set(data)) == 1  # one writer's whole file, never a mix
    assert temp_files(tmp_path) == []


def test_opening_the_store_removes_image_temp_files_a_kill_left_behind(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    row = store.get(store.record(source="s", frame_id=0, model="m", model_version=1, score=2.0, threshold=1.0,
                                 decision="NG", image=np.zeros((8, 8), np.uint8)))
    store.close()
    day = store.image_path(row).parent
    stale, fresh_tmp, other = day / ".x.png.ab12cd.tmp", day / ".y.png.ef34gh.tmp", day / "notes.tmp"
    for path in (stale, fresh_tmp, other):
        path.write_bytes(b"half an image")
    os.utime(stale, (1_700_000_000, 1_700_000_000))  # left by a writer killed long ago
    ResultsStore(tmp_path / "r.sqlite").close()
    assert not stale.exists() and fresh_tmp.exists() and other.exists()  # a write in progress elsewhere is left alone
    assert store.image_path(row).is_file()


def test_csv_export_does_not_depend_on_a_fixed_temp_name(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.record(source="s", frame_id=0, model="m", model_version=1, score=0.1, threshold=1.0, decision="OK")
    out = tmp_path / "export.csv"
    (tmp_path / ".export.csv.tmp").mkdir()  # the old fixed temp name is taken (a leftover, another writer)
    assert store.export_csv(out) == 1
    assert len(out.read_text().splitlines()) == 2
    store.close()


# --- 3. non-finite scores, model errors, no model ------------------------------------------------------------
def test_nan_scores_and_a_nan_threshold_are_stored_as_ng_and_shown_as_nan(predictor, tmp_home, tmp_path, capsys):
    import torch

    broken = fresh(predictor.bundle)
    with torch.no_grad():
        next(broken.model.parameters()).fill_(float("nan"))  # a model whose every score is NaN
    nan_model = Predictor(broken, "cpu")
    nan_model.info.name, nan_model.info.version = "tiny", 2
    video = write_video(tmp_path / "v.avi", good_and_bad(predictor, "ggg"))
    db = tmp_path / "r.sqlite"
    store = ResultsStore(db)
    _, stats, results, _ = run_live(VideoFileSource(video), nan_model, store)
    assert all(math.isnan(r.score) for r in results) and [r.decision for r in results] == ["NG"] * 3
    assert all(r.stored for r in results) and stats.ng == 3 and stats.unsaved == 0

    predictor.threshold = float("nan")  # a threshold that is not a number: nothing can be OK
    _, _, results, _ = run_live(VideoFileSource(video), predictor, store)
    assert [r.decision for r in results] == ["NG"] * 3 and all(r.stored for r in results)
    rows = store.query(newest_first=False)
    assert len(rows) == 6 and {r.decision for r in rows} == {"NG"}
    assert all(math.isnan(r.score) for r in rows[:3]) and all(math.isnan(r.threshold) for r in rows[3:])
    assert store.record(source="s", frame_id=9, model="m", model_version=1, score=float("inf"), threshold=1.0,
                        decision="OK") and store.query(limit=1)[0].decision == "NG"  # inf: fail closed too
    store.close()

    assert main(["history", "--db", str(db), "--model", "tiny@v2"]) == 0
    out = capsys.readouterr().out
    assert out.count(" NG ") == 3 and out.count("nan") >= 3
    assert main(["history", "--db", str(db), "--json", "--model", "tiny@v2"]) == 0
    data = json.loads(capsys.readouterr().out)  # valid JSON: no bare NaN
    assert [r["score"] for r in data["results"]] == [None] * 3
    assert main(["history", "--db", str(db), "--csv", str(tmp_path / "h.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "h.csv").open()))
    assert [r["score"] for r in rows[:3]] == ["nan"] * 3 and [r["threshold"] for r in rows[3:6]] == ["nan"] * 3
    assert {r["decision"] for r in rows} == {"NG"}


def test_cli_live_exits_5_when_a_frame_cannot_be_judged_and_stores_it_as_ng(model_file, predictor, tmp_home, tmp_path, capsys):
    """A watched folder where a smaller image arrives after the first: the ROI that fitted the
    first frames does not fit it, so it cannot be judged: stored as NG with the reason, exit 5."""
    inbox = tmp_path / "inbox"
    good = good_and_bad(predictor, "g")[0]
    write_image(inbox / "a.png", good)
    write_image(inbox / "b.png", good[:32, :32])
    os.utime(inbox / "a.png", (1_700_000_000, 1_700_000_000))  # a first, then b
    db = tmp_path / "r.sqlite"
    code = main(["live", "--source", str(inbox), "--include-existing", "--model", str(model_file), "--db", str(db),
                 "--roi", "0,0,64,64", "--max-frames", "2", "--stats-every", "0"])
    err = capsys.readouterr().err
    assert code == 5, err
    assert "1 not judged" in err and "1 frame(s) could not be judged" in err
    rows = ResultsStore(db).query(newest_first=False)
    assert [(r.frame_name, r.decision, r.error is not None) for r in rows] == [("a.png", "OK", False), ("b.png", "NG", True)]
    assert "does not fit in the 32x32 frame" in rows[1].error


class FailingPredictor:
    """A real predictor whose model raises on every other frame (as a CUDA error or a bad input would)."""

    def __init__(self, inner):
        self.inner, self.info, self.threshold, self.calls = inner, inner.info, inner.threshold, 0

    def predict(self, image, **options):
        self.calls += 1
        if self.calls % 2 == 0:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.inner.predict(image, **options)


def test_a_model_error_is_counted_and_stored_as_ng_never_ok_and_no_model_is_an_error(predictor, tmp_home, tmp_path, capsys):
    video = write_video(tmp_path / "v.avi", good_and_bad(predictor, "gggg"))
    db = tmp_path / "r.sqlite"
    store = ResultsStore(db)
    _, stats, results, errors = run_live(VideoFileSource(video), FailingPredictor(predictor), store)
    assert [r.decision for r in results] == ["OK", "OK"]  # frames 0 and 2; frames 1 and 3 could not be scored
    assert stats.unjudged == 2 and stats.inspected == 2 and {e.kind for e in errors} == {"score"}
    rows = store.query(newest_first=False)
    assert [(r.frame_id, r.decision, r.error is not None) for r in rows] == [(0, "OK", False), (1, "NG", True),
                                                                              (2, "OK", False), (3, "NG", True)]
    assert "illegal memory access" in rows[1].error and math.isnan(rows[1].score)
    assert read_image(store.image_path(rows[1])).shape[:2] == (64, 64)  # the frame that was not judged is kept

    _, stats, results, errors = run_live(VideoFileSource(video), None, store, max_frames=2)
    assert results == [] and stats.unjudged == 2 and {e.kind for e in errors} == {"model"}
    assert [(r.model, r.decision, r.error) for r in store.query(newest_first=False)[-2:]] == [
        ("(none)", "NG", "frame 0 not inspected: no model loaded"), ("(none)", "NG", "frame 1 not inspected: no model loaded")]
    store.close()
    assert main(["history", "--db", str(db), "--model", "tiny@v1"]) == 0
    assert capsys.readouterr().out.count("not scored: frame") == 2


def test_a_schema_1_database_is_migrated_keeping_its_rows(tmp_path):
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE inspections (
            id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, source TEXT NOT NULL, frame_id INTEGER NOT NULL,
            frame_name TEXT NOT NULL DEFAULT '', model TEXT NOT NULL, model_version INTEGER NOT NULL,
            score REAL NOT NULL, threshold REAL NOT NULL,
            decision TEXT NOT NULL CHECK (decision IN ('OK', 'NG')),
            feedback TEXT CHECK (feedback IS NULL OR feedback IN ('false_alarm', 'confirmed')), feedback_time REAL,
            image TEXT, roi TEXT NOT NULL DEFAULT '', latency_ms REAL);
        CREATE INDEX inspections_time ON inspections (time);
        INSERT INTO inspections (time, source, frame_id, model, model_version, score, threshold, decision, feedback)
            VALUES (1700000000, 'camera 0', 7, 'line', 3, 0.5, 0.4, 'NG', 'confirmed');
        PRAGMA user_version = 1;
    """)
    con.close()
    store = ResultsStore(db)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    old = store.get(1)
    assert (old.frame_id, old.model_ref, old.score, old.decision, old.feedback, old.error) == (7, "line@v3", 0.5, "NG", "confirmed", None)
    new_id = store.record(source="s", frame_id=8, model="line", model_version=3, score=float("nan"), threshold=0.4, decision="OK")
    assert new_id == 2 and store.get(2).decision == "NG" and math.isnan(store.get(2).score)
    assert store.integrity_check() == "ok"
    store.close()
    assert ResultsStore(db).count() == {"OK": 0, "NG": 2, "total": 2}  # and it reopens as the current schema


# --- 4. the ROI --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("roi, words", [
    ("1,2,3", "four whole numbers"), ("1.5,2,3,4", "four whole numbers"), ("a,b,c,d", "four whole numbers"),
    ("0,0,0,10", "at least 1"), ("-1,0,10,10", "x, y >= 0"),
])
def test_a_bad_roi_is_refused_at_parse_time(roi, words, tmp_home, capsys):
    assert main(["live", "--source", "0", "--model", "nothing", f"--roi={roi}"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and err.startswith("error: argument --roi")


def test_a_roi_outside_the_frame_stops_live_with_one_error_line(model_file, predictor, tmp_home, tmp_path, capsys):
    video = write_video(tmp_path / "v.avi", good_and_bad(predictor, "gggggggg"))
    db = tmp_path / "r.sqlite"
    code = main(["live", "--source", str(video), "--model", str(model_file), "--db", str(db), "--roi", "5000,5000,10,10",
                 "--stats-every", "0"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "warning" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == ["error: the ROI 5000,5000,10,10 does not fit in the 64x64 frame: it needs x + width <= 64 and "
                      "y + height <= 64"]
    assert ResultsStore(db).count()["total"] == 0

    live = LiveInspector(VideoFileSource(video), predictor, None, roi=(0, 0, 32, 32), max_frames=1)
    live.run()
    with pytest.raises(RoiError):  # frames have been seen: a ROI that does not fit them is refused (the GUI says so)
        live.set_roi((40, 40, 32, 32))
    assert live.roi == (0, 0, 32, 32)


# --- 5. model filters in the store -----------------------------------------------------------------------------
def test_history_model_filter_goes_through_modelref(tmp_path, tmp_home, capsys):
    store = ResultsStore(tmp_path / "r.sqlite")
    for version in (1, 2):
        store.record(source="s", frame_id=version, model="line", model_version=version, score=0.1, threshold=1.0, decision="OK")
    assert [r.frame_id for r in store.query(model="line@v2")] == [2]
    assert [r.frame_id for r in store.query(model="line@2")] == [2]
    for bad in ("line@vx", "../line", "line@v1@v2", "a b"):
        with pytest.raises(StoreError) as e:
            store.query(model=bad)
        assert "\n" not in str(e.value) and "model" in str(e.value)
    store.close()
    assert main(["history", "--db", str(tmp_path / "r.sqlite"), "--model", "line@vx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model filter: invalid model reference 'line@vx'") and err.count("\n") == 1


# --- 6. CSV injection ------------------------------------------------------------------------------------------
def test_spreadsheet_safe():
    assert [spreadsheet_safe(v) for v in ("=1+2", "+x", "-x", "@SUM(A1)", "\tx", "\rx", "ok", "", None)] == [
        "'=1+2", "'+x", "'-x", "'@SUM(A1)", "'\tx", "'\rx", "ok", "", ""]


def test_history_csv_neutralises_text_cells_and_keeps_numbers(tmp_path, tmp_home):
    db = tmp_path / "r.sqlite"
    store = ResultsStore(db)
    store.record(source='=HYPERLINK("http://evil","x")', frame_id=1, frame_name="+cmd|' /C calc'!A0",
                 model="@SUM(1)", model_version=1, score=-1.5, threshold=-0.25, decision="NG")
    store.close()
    out = tmp_path / "h.csv"
    assert main(["history", "--db", str(db), "--csv", str(out)]) == 0
    row = next(csv.DictReader(out.open()))
    assert row["source"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert row["frame_name"] == "'+cmd|' /C calc'!A0" and row["model"] == "'@SUM(1)"
    assert row["score"] == "-1.5" and row["threshold"] == "-0.25"  # numbers stay numbers
    assert float(row["score"]) == -1.5


def test_predict_csv_neutralises_paths_and_errors(model_file, predictor, tmp_home, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "=1+2.png", good_and_bad(predictor, "g")[0])
    (tmp_path / "@broken.png").write_bytes(b"\x89PNG not really")
    assert main(["predict", str(model_file), "=1+2.png", "@broken.png", "--csv", "p.csv"]) == 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["path"] for r in rows] == ["'=1+2.png", "'@broken.png"]
    assert float(rows[0]["score"]) >= 0 and rows[1]["error"]
    assert temp_files(tmp_path) == []


# --- 7. predict --out ------------------------------------------------------------------------------------------
def test_predict_overlays_mirror_the_folders_and_never_collide(model_file, predictor, tmp_home, tmp_path, capsys):
    frames = good_and_bad(predictor, "ggg")
    a, b, out = tmp_path / "in" / "a", tmp_path / "in" / "b", tmp_path / "out"
    write_image(a / "x.png", frames[0])
    write_image(b / "x.png", frames[1])
    write_image(a / "x.jpg", frames[2])
    assert main(["predict", str(model_file), str(a), str(b), str(a / "x.png"), "--out", str(out), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    overlays = sorted(Path(r["overlay"]).relative_to(out).as_posix() for r in results)
    assert overlays == ["a/x.jpg_overlay.png", "a/x.png_overlay-2.png", "a/x.png_overlay.png", "b/x.png_overlay.png"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == overlays  # four files, none overwritten

    assert main(["predict", str(model_file), str(a / "x.png"), "--out", str(out)]) == 0  # one file: beside its name
    assert (out / "x.png_overlay.png").is_file()
    capsys.readouterr()

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    trap = tmp_path / "out2"
    trap.mkdir()
    (trap / "a").symlink_to(outside, target_is_directory=True)  # a folder under --out that leads outside it
    assert main(["predict", str(model_file), str(a), str(b), "--out", str(trap)]) == 2
    assert "outside" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


# --- the Live page: a storage alarm, a ROI refused ---------------------------------------------------------------
def test_live_page_shows_a_storage_alarm_and_refuses_a_roi_outside_the_frame(qtbot, tiny_bundle, predictor, tmp_home, tmp_path):
    pytest.importorskip("pytestqt")
    from inspector.engine.registry import ModelRegistry
    from inspector.gui.pages.live.page import LivePage

    reg = ModelRegistry()
    reg.add(fresh(tiny_bundle), "line")
    video = write_video(tmp_path / "line.avi", good_and_bad(predictor, "gggb"), fps=60)
    page = LivePage(registry=reg, store_path=tmp_path / "results.sqlite")
    qtbot.addWidget(page)
    qtbot.waitUntil(lambda: page.source_panel.model.count() == 1, timeout=10000)
    (tmp_path / "results-images").write_text("occupied")  # no image can be kept
    page.source_panel.keep_ok.setValue(1)
    page.source_panel.source.setCurrentText(str(video))
    with qtbot.waitSignal(page.started, timeout=10000):
        page.start()
    qtbot.waitUntil(lambda: not page.live_view.store_alarm.isHidden() and page.shown is not None, timeout=15000)
    assert "NOT stored" in page.live_view.store_alarm.text() and "cannot write its image" in page.live_view.store_alarm.text()
    assert int(page.counters.labels["unsaved"].text()) >= 1
    assert page.message_bar.level == "error"
    qtbot.waitUntil(lambda: "NOT STORED" in page.live_view.detail_label.text(), timeout=5000)
    assert not page.feedback.false_alarm_button.isEnabled()  # nothing to give feedback on: the result is not in the database
    with qtbot.waitSignal(page.stopped, timeout=10000):
        page.stop()

    page.live_view.roi_edit.setText("5000,5000,10,10")
    page.live_view.roi_edit.editingFinished.emit()  # frames have been seen: refused with a message, nothing changed
    assert "does not fit in the 64x64 frame" in page.message_bar.text.text() and page.controller.live.roi is None
    with qtbot.waitSignal(page.stopped, timeout=15000):  # started with it anyway: stops on the first frame, says why
        page.start()
    assert "Live inspection stopped: the ROI 5000,5000,10,10 does not fit" in page.message_bar.text.text()
    assert page.message_bar.level == "error" and not page.is_running()
    page.shutdown()
