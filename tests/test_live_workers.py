"""Live mode's inference workers: as many as the cores to use, each on one torch thread, scoring
frames side by side and committing and reporting them in capture order (``engine/live.py``)."""

from __future__ import annotations

import copy
import threading
import time

import numpy as np
import pytest
import torch

from inspector.data.images import read_image
from inspector.data.sources import FrameSource, SourceEnded, VideoFileSource, write_video
from inspector.engine.bundle import ModelBundle
from inspector.engine.device import live_threads
from inspector.engine.live import LiveInspector
from inspector.engine.predictor import Predictor
from inspector.engine.results_store import ResultsStore
from tests.conftest import make_part
from tests.test_live import typical_goods, unmistakable_defect


@pytest.fixture
def predictor(tiny_bundle):
    p = Predictor(ModelBundle(copy.deepcopy(tiny_bundle.model), copy.deepcopy(tiny_bundle.info)), "cpu")
    p.info.name, p.info.version = "tiny", 1
    return p


class Recording:
    """A real predictor that notes which thread scored each frame, on how many torch threads, and
    takes a different time per frame (so frames finish out of the order they were taken)."""

    def __init__(self, inner: Predictor, delays_ms: list[float], fail_every: int = 0) -> None:
        self.inner, self.info, self.threshold = inner, inner.info, inner.threshold
        self.delays, self.fail_every, self.calls = delays_ms, fail_every, 0
        self.lock = threading.Lock()
        self.seen: list[tuple[str, int]] = []  # (thread name, torch threads) per call

    def predict(self, image: np.ndarray, **options):
        with self.lock:
            call, self.calls = self.calls, self.calls + 1
            self.seen.append((threading.current_thread().name, torch.get_num_threads()))
        time.sleep(self.delays[call % len(self.delays)] / 1000)
        if self.fail_every and call % self.fail_every == self.fail_every - 1:
            raise RuntimeError(f"model failed on call {call}")
        return self.inner.predict(image, **options)


def video_of(tmp_path, n: int):
    rng = np.random.default_rng(4)
    return write_video(tmp_path / "line.avi", [make_part(rng) for _ in range(n)], fps=30)


def test_the_workers_are_the_cores_to_use_each_scoring_on_one_torch_thread(predictor, tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_THREADS", "3")
    recording = Recording(predictor, [30.0])
    live = LiveInspector(VideoFileSource(video_of(tmp_path, 12)), recording, None)
    stats = live.run()
    assert stats.workers == live_threads() == 3 and stats.inspected == 12
    assert {name for name, _ in recording.seen} == {"live-inference-1", "live-inference-2", "live-inference-3"}
    assert {threads for _, threads in recording.seen} == {1}, "a worker on several torch threads is throttled by libgomp"


def test_frames_scored_side_by_side_are_stored_and_reported_in_capture_order(predictor, tmp_path, monkeypatch):
    """Frames finish out of order (different times, every fourth fails): rows, seq and reports keep
    the capture order, a failed frame is NG in its place, and each result is on disk when reported."""
    monkeypatch.setenv("INSPECTOR_THREADS", "3")
    store = ResultsStore(tmp_path / "r.sqlite")
    reported = []

    def on_result(r):
        assert store.get(r.record_id).frame_id == r.frame.frame_id
        reported.append((r.seq, r.frame.frame_id))

    recording = Recording(predictor, [40.0, 5.0, 20.0, 0.0, 30.0], fail_every=4)
    stats = LiveInspector(VideoFileSource(video_of(tmp_path, 20)), recording, store, on_result=on_result).run()
    rows = store.query(newest_first=False)
    assert [r.frame_id for r in rows] == list(range(20))
    assert [(r.frame_id, r.decision) for r in rows if r.error is not None] == [(i, "NG") for i in (3, 7, 11, 15, 19)]
    judged = [i for i in range(20) if i not in (3, 7, 11, 15, 19)]
    assert reported == list(enumerate(judged, start=1))
    assert stats.inspected == 15 and stats.unjudged == 5 and len({name for name, _ in recording.seen}) > 1
    store.close()


def test_a_pause_on_ng_holds_the_frames_still_being_scored_until_resume(predictor, tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_THREADS", "3")
    reported, paused = [], threading.Event()
    rng = np.random.default_rng(6)
    goods = iter(typical_goods(predictor, rng, 11))
    frames = [unmistakable_defect(predictor, rng) if i == 4 else next(goods) for i in range(12)]
    recording = Recording(predictor, [20.0])
    live = LiveInspector(VideoFileSource(write_video(tmp_path / "ng.avi", frames)), recording, None, pause_on_ng=True,
                         on_result=lambda r: reported.append(r.frame.frame_id), on_paused=lambda r: paused.set())
    live.start()
    assert paused.wait(20)
    time.sleep(0.3)  # the workers scoring frames 5 and 6 have finished them by now
    assert reported == [0, 1, 2, 3, 4] and live.last_result.decision == "NG", "the result paused on stays the last one"
    live.pause_on_ng = False
    live.resume()
    stats = live.run()
    assert reported == list(range(12)) and stats.inspected == 12


def test_a_worker_scores_the_next_frame_while_the_one_before_is_being_stored(predictor, tmp_path, monkeypatch):
    """One worker: an NG frame's image encoding and writing (11 of a 30 fps camera's 33 ms a frame)
    happen in the commit thread, so the worker is not held by them. The store here waits in an NG
    frame's write until the next frame is being scored, which only a free worker can do; the stored
    image is the frame, losslessly, and every row is in capture order."""
    monkeypatch.setenv("INSPECTOR_THREADS", "1")
    rng = np.random.default_rng(8)
    goods = iter(typical_goods(predictor, rng, 6))
    frames = [unmistakable_defect(predictor, rng) if i in (2, 5) else next(goods) for i in range(8)]
    scoring = {i: threading.Event() for i in range(len(frames))}
    scored_while_stored: list[int] = []

    class Noting(Recording):
        def predict(self, image, **options):
            scoring[self.calls].set()
            return super().predict(image, **options)

    class Slow(ResultsStore):
        def record(self, **fields):
            if fields["decision"] == "NG" and fields["frame_id"] + 1 < len(frames):
                if scoring[fields["frame_id"] + 1].wait(10):
                    scored_while_stored.append(fields["frame_id"])
            return super().record(**fields)

    store = Slow(tmp_path / "r.sqlite")
    stats = LiveInspector(VideoFileSource(write_video(tmp_path / "ng.avi", frames)), Noting(predictor, [0.0]), store).run()
    assert stats.inspected == 8 and stats.ng == 2
    assert scored_while_stored == [2, 5], "the worker waited for the store before scoring the next frame"
    rows = store.query(newest_first=False)
    assert [r.frame_id for r in rows] == list(range(8))
    for row in rows:
        if row.decision == "NG":
            assert np.array_equal(read_image(store.image_path(row)), frames[row.frame_id])
    store.close()


class CatchingUpCamera(FrameSource):
    """A camera whose reader is late every time: each read returns two frames back to back (the
    one it missed and the new one), a pair every 80 ms."""

    def __init__(self, images: list[np.ndarray]) -> None:
        super().__init__("catching-up camera")
        self.images, self.i = images, 0

    def _open(self) -> None:
        time.sleep(0.2)  # the workers are waiting when the first pair comes

    def _read(self) -> np.ndarray:
        if self.i >= len(self.images):
            raise SourceEnded("done")
        if self.i % 2 == 0:
            time.sleep(0.08)
        self.i += 1
        return self.images[self.i - 1]


@pytest.mark.parametrize("workers", [1, 2])
def test_frames_read_at_once_are_all_inspected_while_a_worker_is_free(predictor, tmp_path, monkeypatch, workers):
    """A camera source drops a frame only when a newer one comes while every worker is busy: a pair
    read at once (a capture catching up) is inspected whole, on one worker or two."""
    monkeypatch.setenv("INSPECTOR_THREADS", str(workers))
    rng = np.random.default_rng(9)
    camera = CatchingUpCamera([make_part(rng) for _ in range(12)])
    assert camera.drops_frames
    recording = Recording(predictor, [10.0])
    stats = LiveInspector(camera, recording, None).run()
    assert stats.inspected == 12 and stats.dropped == 0
    assert len({name for name, _ in recording.seen}) == workers


def test_while_every_worker_is_busy_the_newest_frame_replaces_the_one_waiting(predictor, tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_THREADS", "1")  # one worker, busy for longer than two pairs' interval
    rng = np.random.default_rng(10)
    images = [make_part(rng) for _ in range(12)]
    reported = []
    live = LiveInspector(CatchingUpCamera(images), Recording(predictor, [200.0]), None,
                         on_result=lambda r: reported.append(r.frame.frame_id))
    stats = live.run()
    assert stats.dropped >= 6 and stats.inspected + stats.dropped == 12
    assert reported == sorted(reported) and reported[-1] == 11, "the last frame, the newest, is inspected"
