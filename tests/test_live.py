"""Live inspection: frame sources, the results store, the live loop, `inspector live` / `history`."""

from __future__ import annotations

import copy
import csv
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from inspector.data.images import read_image, write_image
from inspector.data.sources import (
    SimulatedLineSource,
    Backoff,
    CameraSource,
    FolderSource,
    FrameSource,
    SourceEnded,
    SourceError,
    SourceLost,
    SourceState,
    VideoFileSource,
    open_source,
    parse_source,
    write_video,
)
from inspector.data.synthetic import paint_defect
from inspector.engine.bundle import ModelBundle
from inspector.engine.live import LiveInspector, clip_roi, parse_roi
from inspector.engine.predictor import Predictor
from inspector.engine.results_store import ResultsStore, StoreError, parse_time
from tests.conftest import make_part

ROOT = Path(__file__).resolve().parents[1]


# --- helpers -------------------------------------------------------------------------------------------
def fresh(bundle: ModelBundle) -> ModelBundle:
    """A private copy (other tests register the shared bundle, which renames it)."""
    return ModelBundle(copy.deepcopy(bundle.model), copy.deepcopy(bundle.info))


@pytest.fixture
def predictor(tiny_bundle):
    p = Predictor(fresh(tiny_bundle), "cpu")
    p.info.name, p.info.version = "tiny", 1
    return p


def typical_goods(predictor, rng, n, max_ratio=0.75):
    """Good parts the model is clearly happy with (the tiny test model flags ~10% of random ones)."""
    goods = []
    while len(goods) < n:
        image = make_part(rng)
        if predictor.predict(image).score < max_ratio * predictor.threshold:
            goods.append(image)
    return goods


def unmistakable_defect(predictor, rng, min_ratio=1.5):
    """A part with a large painted blob that scores far above the threshold."""
    while True:
        image, _ = paint_defect(make_part(rng), rng, "blob", scale=3.0)
        if predictor.predict(image).score > min_ratio * predictor.threshold:
            return image


def wait_for(condition, timeout=15.0, interval=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(interval)
    return False


# --- the live loop on a video with planted defects ----------------------------------------------------------
def test_planted_defects_are_exactly_the_ng_frames_in_the_store(predictor, tmp_path):
    rng = np.random.default_rng(11)
    planted = {3, 8, 9, 17}
    goods = iter(typical_goods(predictor, rng, 20 - len(planted)))
    frames = [unmistakable_defect(predictor, rng) if i in planted else next(goods) for i in range(20)]
    video = write_video(tmp_path / "line.avi", frames, fps=30)
    store = ResultsStore(tmp_path / "results.sqlite")
    seen = []

    def on_result(r):  # a result is reported only once its row is committed
        seen.append(r)
        assert store.get(r.record_id).decision == r.decision

    stats = LiveInspector(VideoFileSource(video), predictor, store, on_result=on_result).run()

    rows = store.query(newest_first=False)
    assert [r.frame_id for r in rows] == list(range(20)), "every frame of a file read as fast as possible is inspected"
    assert {r.frame_id for r in rows if r.decision == "NG"} == planted
    assert stats.inspected == 20 and stats.ng == len(planted) and stats.dropped == 0
    assert stats.source_state == "ended" and len(seen) == 20
    for r in rows:
        assert (r.model, r.model_version, r.source) == ("tiny", 1, "video line.avi")
        if r.decision == "NG":  # NG frames are kept as images; OK frames are not sampled by default
            assert read_image(store.image_path(r)).shape[:2] == (64, 64)
        else:
            assert r.image is None
    store.close()


def test_roi_limits_inspection_to_the_region(predictor, tmp_path):
    rng = np.random.default_rng(5)
    good = typical_goods(predictor, rng, 1)[0]
    frame = np.zeros((96, 128), np.uint8)
    frame[:] = 255  # a glaring area outside the ROI: never inspected
    frame[16:80, 40:104] = good
    defective = frame.copy()
    defective[16:80, 40:104] = unmistakable_defect(predictor, rng)
    video = write_video(tmp_path / "roi.avi", [frame, defective, frame])
    store = ResultsStore(tmp_path / "r.sqlite")
    live = LiveInspector(VideoFileSource(video), predictor, store, roi=parse_roi("40,16,64,64"))
    live.run()
    rows = store.query(newest_first=False)
    assert [r.decision for r in rows] == ["OK", "NG", "OK"]
    assert {r.roi for r in rows} == {"40,16,64,64"}
    assert read_image(store.image_path(rows[1])).shape[:2] == (64, 64)  # the inspected region is what is kept
    overlay = live.recent_ng[-1].overlay(0.5)
    assert overlay.shape == (96, 128, 3) and (overlay[0, 0] == 255).all()  # no heat outside the ROI
    assert clip_roi((100, 80, 100, 100), (96, 128)) == (100, 80, 28, 16)
    with pytest.raises(ValueError):
        clip_roi((500, 500, 10, 10), (96, 128))
    with pytest.raises(ValueError):
        parse_roi("1,2,3")


class SlowPredictor:
    """A real predictor that takes ``delay`` seconds per frame (inference slower than the camera)."""

    def __init__(self, inner, delay):
        self.inner, self.delay = inner, delay
        self.info, self.threshold = inner.info, inner.threshold

    def predict(self, image, **options):
        time.sleep(self.delay)
        return self.inner.predict(image, **options)


def test_latest_frame_wins_when_inference_is_slower_than_the_camera(predictor, tmp_path):
    rng = np.random.default_rng(2)
    video = write_video(tmp_path / "cam.avi", [make_part(rng) for _ in range(10)])
    source = VideoFileSource(video, loop=True, fps=200)  # a 200 fps "camera"
    assert source.drops_frames
    live = LiveInspector(source, SlowPredictor(predictor, 0.05), None, max_frames=8)
    stats = live.run()
    assert stats.inspected == 8
    assert stats.dropped > 8, "frames that arrive during inference replace each other instead of queueing"
    assert stats.latency_p95_ms < 200, "an inspected frame is always a fresh one"


# --- sources: lost and recovered -------------------------------------------------------------------------------
class FlakyCamera(FrameSource):
    """Delivers 4 frames, loses the connection, fails to reconnect twice, then delivers 4 more."""

    drops_frames = False

    def __init__(self, frames):
        super().__init__("flaky camera", Backoff(initial=0.01, factor=2.0, maximum=0.05))
        self.images, self.i, self.unplugged, self.failed_opens = frames, 0, False, 0

    def _open(self):
        if self.unplugged and self.failed_opens < 2:
            self.failed_opens += 1
            raise SourceLost("camera not found")

    def _read(self):
        if self.i == 4 and not self.unplugged:
            self.unplugged = True
            raise SourceLost("cable pulled")
        if self.i >= len(self.images):
            raise SourceEnded("done")
        self.i += 1
        return self.images[self.i - 1]


def test_a_source_that_fails_mid_stream_is_lost_then_recovers(predictor, tmp_path):
    rng = np.random.default_rng(3)
    changes = []
    store = ResultsStore(tmp_path / "r.sqlite")
    live = LiveInspector(FlakyCamera([make_part(rng) for _ in range(8)]), predictor, store, on_state=changes.append)
    stats = live.run()
    states = [c.state for c in changes]
    connecting, live_state, lost_state, ended = SourceState.CONNECTING, SourceState.LIVE, SourceState.LOST, SourceState.ENDED
    assert states == [connecting, live_state, lost_state, connecting, lost_state, connecting, lost_state, connecting, live_state, ended]
    lost = [c for c in changes if c.state == lost_state]
    assert [c.attempt for c in lost] == [1, 2, 3] and [c.retry_in_s for c in lost] == [0.01, 0.02, 0.04]
    assert lost[0].message == "cable pulled"
    assert stats.inspected == 8 and [r.frame_id for r in store.query(newest_first=False)] == list(range(8))


def test_missing_video_is_retried_until_it_appears(tmp_path):
    path = tmp_path / "later.avi"
    source = VideoFileSource(path, backoff=Backoff(0.02, 1.0, 0.02))
    changes, frames, stop = [], [], threading.Event()

    def consume():
        for frame in source.frames(stop, on_state=changes.append):
            frames.append(frame)

    thread = threading.Thread(target=consume)
    thread.start()
    assert wait_for(lambda: sum(c.state == SourceState.LOST for c in changes) >= 2)
    write_video(path, [np.full((32, 32), v, np.uint8) for v in (10, 200)])
    thread.join(10)
    assert [c.state for c in changes][-2:] == [SourceState.LIVE, SourceState.ENDED]
    assert [int(f.image.mean()) for f in frames] == [10, 200]


def test_an_absent_camera_is_reported_lost_and_retried_without_raising():
    source = CameraSource(97, backoff=Backoff(0.01, 1.0, 0.01))
    changes, stop = [], threading.Event()

    def on_state(change):
        changes.append(change)
        if sum(c.state == SourceState.LOST for c in changes) >= 2:
            stop.set()

    assert list(source.frames(stop, on_state=on_state)) == []
    assert [c.state for c in changes] == [SourceState.CONNECTING, SourceState.LOST] * 2
    assert "camera 97" in changes[1].message


def test_http_stream_that_closes_is_lost_and_reopened(tmp_path):
    """A real stream source: OpenCV/FFmpeg reads a video over HTTP; when the stream closes it is
    reported lost and reconnected, and frames flow again."""
    import functools
    import http.server

    rng = np.random.default_rng(12)
    write_video(tmp_path / "cam.avi", [make_part(rng) for _ in range(10)])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cam.avi"
        source = open_source(url, backoff=Backoff(0.05, 1.0, 0.05))
        changes, frames, stop = [], [], threading.Event()
        for frame in source.frames(stop, on_state=changes.append):
            frames.append(frame)
            if len(frames) == 15:
                stop.set()
    finally:
        server.shutdown()
        server.server_close()
    states = [c.state for c in changes]
    assert states == [SourceState.CONNECTING, SourceState.LIVE, SourceState.LOST, SourceState.CONNECTING, SourceState.LIVE]
    assert [f.frame_id for f in frames] == list(range(15)) and frames[0].image.shape == (64, 64, 3)


def test_parse_and_open_sources(tmp_path):
    video = write_video(tmp_path / "v.avi", [np.zeros((16, 16), np.uint8)] * 2)
    assert parse_source("0").kind == "camera"
    assert parse_source("rtsp://user:secret@10.0.0.5/stream").kind == "stream"
    assert parse_source(str(tmp_path)).kind == "folder"
    assert parse_source(str(video)).kind == "video"
    stream = open_source("rtsp://user:secret@10.0.0.5/stream")
    assert "secret" not in stream.description and stream.drops_frames
    assert isinstance(open_source(str(tmp_path)), FolderSource) and not open_source(str(tmp_path)).drops_frames
    assert not open_source(str(video)).drops_frames and open_source(str(video), realtime=True).drops_frames
    with pytest.raises(SourceError):
        parse_source(str(tmp_path / "nothing-here.avi"))


def test_simulated_line_feeds_every_part_at_a_steady_rate_and_goes_round(predictor, tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    goods = typical_goods(predictor, rng, 4)
    for i, image in enumerate(goods):
        write_image(tmp_path / "parts" / "good" / f"{i}.png", image)
    write_image(tmp_path / "parts" / "crack" / "0.png", unmistakable_defect(predictor, rng))
    (tmp_path / "parts" / "notes.txt").write_text("not a part")
    source = open_source(f"sim:{tmp_path / 'parts'}", fps=40)
    assert isinstance(source, SimulatedLineSource) and source.drops_frames  # a line does not wait for the inspection

    store = ResultsStore(tmp_path / "results.sqlite")
    start = time.perf_counter()
    live = LiveInspector(source, predictor, store, max_frames=10)
    stats = live.run()
    elapsed = time.perf_counter() - start
    rows = store.query(newest_first=False)
    names = [r.frame_name for r in rows]
    assert len(rows) == stats.inspected and elapsed >= 9 / 40, "one part every 1/fps seconds, never faster"
    # the run's rate counts from the first result: a line read late once feeds the part it missed at once
    # (SimulatedLineSource keeps its schedule), so over 10 parts it may be 9 intervals in 8 periods
    assert 0 < stats.fps <= 40 * 9 / 8 * 1.1
    parts = {f"good/{i}.png" for i in range(4)} | {"crack/0.png"}
    assert set(names) <= parts and "crack/0.png" in names
    if stats.dropped == 0:  # every part of a round once, in a shuffled order, then round again
        assert set(names[:5]) == parts and set(names[5:10]) == parts and names[:5] != sorted(names[:5])
    assert {r.decision for r in rows if r.frame_name == "crack/0.png"} == {"NG"}
    assert {r.decision for r in rows if r.frame_name.startswith("good/")} == {"OK"}
    later = time.perf_counter() + 10  # read again long after the run (as the CLI's summary, after the sinks drain)
    monkeypatch.setattr("inspector.engine.live.time", types.SimpleNamespace(perf_counter=lambda: later))
    assert live.stats().fps == stats.fps, "the run's own rate, not the last seconds' (0 once it is over)"
    store.close()
    with pytest.raises(SourceError, match="simulated line"):
        parse_source(f"sim:{tmp_path / 'no-such-folder'}")


# --- the watched folder --------------------------------------------------------------------------------------
def test_watched_folder_inspects_new_complete_files_only(predictor, tmp_path):
    inbox = tmp_path / "inbox"
    rng = np.random.default_rng(9)
    write_image(inbox / "old.png", make_part(rng))  # there before watching: not a new part
    source = FolderSource(inbox, poll_s=0.02, settle_s=0.1, give_up_s=30)
    store = ResultsStore(tmp_path / "r.sqlite")
    live = LiveInspector(source, predictor, store, max_frames=2).start()
    assert wait_for(lambda: source.state == SourceState.LIVE)

    write_image(inbox / "a.png", make_part(rng))
    assert wait_for(lambda: store.count()["total"] == 1)

    import cv2

    data = cv2.imencode(".png", make_part(rng))[1].tobytes()
    half = inbox / "b.png"
    half.write_bytes(data[: len(data) // 2])  # a camera still writing: stable for a moment, not decodable
    time.sleep(0.5)
    assert store.count()["total"] == 1, "a half-written file is not inspected"
    with open(half, "ab") as f:
        f.write(data[len(data) // 2 :])
    assert live.finished.wait(10)
    rows = store.query(newest_first=False)
    assert [r.frame_name for r in rows] == ["a.png", "b.png"]
    assert rows[0].source == f"folder {inbox}"


# --- the results store ----------------------------------------------------------------------------------------
def test_results_store_wal_query_feedback_and_csv(tmp_path):
    db = tmp_path / "sub" / "r.sqlite"
    store = ResultsStore(db, save_ok_every=2)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    image = np.full((8, 8), 50, np.uint8)
    t0 = 1_700_000_000.0
    ids = []
    for i in range(6):
        ids.append(store.record(source="camera 0", frame_id=i, model="line" if i < 4 else "other", model_version=1 + i % 2,
                                score=0.1 * i, threshold=0.35, decision="NG" if i >= 4 else "OK", image=image,
                                timestamp=t0 + i * 60, latency_ms=12.5))
    rows = store.query(newest_first=False)
    assert [r.id for r in rows] == ids
    assert [r.image is not None for r in rows] == [True, False, True, False, True, True]  # every 2nd OK + all NG
    assert len(store.query(decision="ng")) == 2
    assert [r.frame_id for r in store.query(model="line@v2", newest_first=False)] == [1, 3]
    assert [r.frame_id for r in store.query(since=t0 + 120, until=t0 + 180, newest_first=False)] == [2, 3]
    assert store.count(model="line") == {"OK": 4, "NG": 0, "total": 4}
    assert store.models() == ["line@v1", "line@v2", "other@v1", "other@v2"]

    row = store.set_feedback(ids[3], "confirmed", image=image)  # an OK frame without an image gets one
    assert row.feedback == "confirmed" and row.image is not None and store.image_path(row).is_file()
    store.set_feedback(ids[4], "false_alarm")
    assert [r.id for r in store.query(feedback="any", newest_first=False)] == [ids[3], ids[4]]
    with pytest.raises(ValueError):
        store.set_feedback(ids[0], "maybe")
    with pytest.raises(StoreError):
        store.query(decision="meh")

    out = tmp_path / "export.csv"
    assert store.export_csv(out, decision="NG") == 2
    rows = list(csv.DictReader(out.open()))
    assert [r["frame_id"] for r in rows] == ["4", "5"] and rows[0]["feedback"] == "false_alarm"
    assert Path(rows[0]["image"]).is_file()
    store.close()
    assert ResultsStore(db).integrity_check() == "ok"  # reopens


def test_parse_time():
    now = 1_700_000_000.0
    assert parse_time("2h", now=now) == now - 7200
    assert parse_time("30m", now=now) == now - 1800
    assert parse_time(None) is None
    assert parse_time("2024-05-01T08:00:00+00:00") == 1714550400.0
    with pytest.raises(StoreError):
        parse_time("yesterday-ish")


# --- the headless command -----------------------------------------------------------------------------------------
@pytest.fixture
def model_file(tiny_bundle, tmp_path):
    bundle = fresh(tiny_bundle)
    bundle.info.name, bundle.info.version = "", 0
    return bundle.save(tmp_path / "tiny.inspector")


def test_cli_live_and_history(model_file, predictor, tmp_home, tmp_path, capsys):
    from inspector.cli import main

    rng = np.random.default_rng(4)
    goods = typical_goods(predictor, rng, 5)
    frames = goods[:2] + [unmistakable_defect(predictor, rng)] + goods[2:]
    video = write_video(tmp_path / "v.avi", frames)
    db = tmp_path / "r.sqlite"
    assert main(["live", "--source", str(video), "--model", str(model_file), "--db", str(db), "--max-frames", "4",
                 "--save-ok-every", "1", "--stats-every", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("NG ") and "frame 2  tiny  " in out and out.count("\n") == 1
    assert "inspected 4, NG 1" in err
    assert main(["history", "--db", str(db), "--decision", "NG", "--json"]) == 0
    data = __import__("json").loads(capsys.readouterr().out)
    assert data["counts"] == {"OK": 0, "NG": 1, "total": 1} and data["results"][0]["frame_id"] == 2
    assert main(["history", "--db", str(db), "--csv", str(tmp_path / "all.csv"), "--since", "1h"]) == 0
    assert len((tmp_path / "all.csv").read_text().splitlines()) == 5
    assert main(["history", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert main(["live", "--source", str(tmp_path / "nope"), "--model", str(model_file)]) == 2
    assert "no such camera, URL, video file or folder" in capsys.readouterr().err
    assert main(["live", "--source", str(video), "--model", str(model_file), "--roi", "1,2"]) == 2


def test_sigkill_mid_run_loses_nothing_committed(model_file, tmp_home, tmp_path):
    """Kill -9 the headless process while it writes: the database opens, passes the integrity
    check, and every committed row's image is there and readable."""
    rng = np.random.default_rng(6)
    frames = [make_part(rng) for _ in range(12)]
    frames[5] = paint_defect(frames[5], rng, "blob", scale=3.0)[0]
    video = write_video(tmp_path / "loop.avi", frames)
    db = tmp_path / "kill.sqlite"
    env = dict(os.environ, INSPECTOR_HOME=str(tmp_home), INSPECTOR_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector.cli", "live", "--source", str(video), "--loop", "--model", str(model_file),
         "--db", str(db), "--save-ok-every", "1", "--stats-every", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT,
    )

    def rows_so_far() -> int:
        if not db.exists():
            return 0
        try:
            with sqlite3.connect(db, timeout=1) as con:
                return con.execute("SELECT COUNT(*) FROM inspections").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    try:
        assert wait_for(lambda: rows_so_far() >= 60 or proc.poll() is not None, timeout=40), "no results written"
        assert proc.poll() is None, proc.stderr.read().decode()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = con.execute("SELECT id, frame_id, decision, image FROM inspections ORDER BY id").fetchall()
    con.close()
    assert len(rows) >= 60
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert [r[1] for r in rows] == list(range(len(rows))), "frames in order, none lost or doubled"
    for *_, image in rows:
        assert image is not None
        assert read_image(db.parent / image).shape[:2] == (64, 64)
    saved = list((tmp_path / "kill-images").rglob("*.png"))
    assert len(rows) <= len(saved) <= len(rows) + 1  # at most the one image whose row was never committed
    store = ResultsStore(db)  # and the store carries on where it stopped
    assert store.record(source="s", frame_id=0, model="m", model_version=1, score=0, threshold=1, decision="OK") == len(rows) + 1
    store.close()
