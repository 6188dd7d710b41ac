"""The live inspection loop, headless: ``LiveController`` (behind the GUI's Live page and
``inspector live``) runs it.

Threads:

* **capture** reads the source (``FrameSource.frames``: reconnection and back-off live there)
  and puts each frame into a slot. For a camera-like source a new frame replaces the one waiting
  when every worker is busy (counted as dropped): when inference is slower than the camera, the
  loop inspects the latest part, never a backlog, and memory stays flat; frames read at once (a
  late read catching up) are all inspected while a worker is free. For a folder or a file read
  as fast as possible the capture waits instead, so every frame is inspected.
* **inference workers**, one per core to use, each scoring on one torch thread
  (``device.live_threads`` says why): a free worker takes the frame in the slot, crops the region
  of interest and scores it with the one ``Predictor`` (without the reconstruction: nothing in live
  mode shows it), then hands the result over and takes the next frame.
* **commit** takes the scored frames in the order they were taken, which is the order they were
  captured, and stores each in the ``ResultsStore`` (an NG frame's image encoded and written
  first) and only then reports it (``on_result``, the line outputs): a result shown as done is a
  result on disk, and ``seq`` counts results in that order. Storing is off the workers' path: an
  NG frame's image encoding and a slow disk do not hold up the scoring of the frames after it;
  at most one scored frame per worker waits to be committed. When the store fails (disk full,
  database locked, images folder not writable) the result is still reported, with
  ``stored=False`` and no ``record_id``, and counted in ``LiveStats.unsaved``: never shown as stored.

Nothing is judged OK that was not judged: a frame whose scoring fails (a model error, no model)
is counted in ``LiveStats.unjudged``, reported through ``on_error`` and stored as NG with the
reason, in its place in the order. A region of interest that does not fit in the first frame
stops the run (``fatal``). A pause (``pause``, or ``pause_on_ng``) stops workers taking frames,
and holds the results of frames already taken until ``resume`` (or ``stop``): the result paused
on stays the last one reported.

The predictor can be swapped while running (``set_predictor``; or ``follow_registry`` to pick
up promotions and rollbacks of a registered model); the frames taken after it use the new one,
frames being scored finish with the old. Events go through plain callbacks called from the loop's
threads, one at a time; the GUI turns them into Qt signals.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from inspector.data.sources import Frame, FrameSource, SourceState, StateChange
from inspector.engine.decision import NG
from inspector.engine.events import CancelToken
from inspector.engine.modelref import ref_text
from inspector.engine.results_store import ResultsStore, StoreError

if TYPE_CHECKING:  # torch: imported by whoever makes the predictor, not by parse_roi's callers
    from inspector.engine.predictor import Prediction, Predictor
    from inspector.engine.sinks import LineOutputs

log = logging.getLogger(__name__)

Roi = tuple[int, int, int, int]  # x, y, width, height in frame pixels


def parse_roi(text: str | Sequence[int] | None) -> Roi | None:
    """``"x,y,w,h"`` (or a 4-sequence) → a ROI; None or "" → the whole frame."""
    if text is None or text == "":
        return None
    values = [v.strip() for v in text.split(",")] if isinstance(text, str) else list(text)
    try:
        if len(values) != 4 or any(isinstance(v, float) and not v.is_integer() for v in values):
            raise ValueError
        x, y, w, h = (int(v) for v in values)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"ROI must be four whole numbers x,y,w,h in pixels, got '{text}'") from None
    if w < 1 or h < 1 or x < 0 or y < 0:
        raise ValueError(f"ROI needs x, y >= 0 and a width and height of at least 1, got '{text}'")
    return x, y, w, h


class RoiError(ValueError):
    """A region of interest that does not fit in the frame (one line, with the frame's size)."""


def check_roi(roi: Roi | None, shape: tuple[int, ...]) -> Roi | None:
    """``roi`` if it lies wholly inside a frame of ``shape``, else RoiError: a region partly
    outside would silently inspect something else than what was set up."""
    if roi is None:
        return None
    h, w = shape[:2]
    x, y, rw, rh = roi
    if x < 0 or y < 0 or rw < 1 or rh < 1 or x + rw > w or y + rh > h:
        raise RoiError(f"the ROI {x},{y},{rw},{rh} does not fit in the {w}x{h} frame: "
                       f"it needs x + width <= {w} and y + height <= {h}")
    return roi


def clip_roi(roi: Roi | None, shape: tuple[int, ...]) -> Roi | None:
    """The part of ``roi`` inside a frame of ``shape``; an error when nothing is left."""
    if roi is None:
        return None
    h, w = shape[:2]
    x, y, rw, rh = roi
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + rw), min(h, y + rh)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"the ROI {x},{y},{rw},{rh} lies outside the {w}x{h} frame")
    return x0, y0, x1 - x0, y1 - y0


def crop(image: np.ndarray, roi: Roi | None) -> np.ndarray:
    if roi is None:
        return image
    x, y, w, h = roi
    return image[y : y + h, x : x + w]


@dataclass
class LiveResult:
    """One inspected frame: the verdict, as committed to the store."""

    frame: Frame
    prediction: Prediction  # of the inspected region (the ROI crop, or the whole frame)
    roi: Roi | None
    model: str  # registry name (or file stem)
    model_version: int
    record_id: int | None  # the store's row id (None without a store, or if writing failed)
    latency_ms: float  # capture → committed
    inference_ms: float
    seq: int  # 1-based count of results in this run
    stored: bool = False  # True only once the row is committed
    store_error: str | None = None  # why it is not stored (None when stored, or when there is no store)

    @property
    def decision(self) -> str:
        return self.prediction.decision

    @property
    def score(self) -> float:
        return self.prediction.score

    @property
    def threshold(self) -> float:
        return self.prediction.threshold

    @property
    def model_ref(self) -> str:
        return ref_text(self.model, self.model_version or None)

    def overlay(self, opacity: float = 0.5) -> np.ndarray:
        """The whole frame (RGB) with the heat map blended in over the inspected region."""
        from inspector.engine.predictor import heat_overlay

        full = self.frame.image
        rgb = np.repeat(full[:, :, None], 3, axis=2) if full.ndim == 2 else full[:, :, :3].copy()
        if self.roi is None:
            return heat_overlay(rgb, self.prediction.heat, opacity)
        x, y, w, h = self.roi
        rgb[y : y + h, x : x + w] = heat_overlay(rgb[y : y + h, x : x + w], self.prediction.heat, opacity)
        return rgb


@dataclass
class LiveStats:
    inspected: int = 0
    ng: int = 0
    dropped: int = 0  # frames the source delivered that were replaced before inspection
    errors: int = 0  # every problem reported through on_error (unsaved and unjudged included)
    unsaved: int = 0  # results (and not-judged frames) a store was given but could not store
    unjudged: int = 0  # frames that could not be scored (model error, no model, ROI not in the frame)
    store_alarm: str = ""  # the latest storage failure, for an alarm ('' = none in this run)
    fatal: str = ""  # why the run stopped on its own ('' = it did not)
    fps: float = 0.0  # results per second over the last few seconds; once the run is over, over the whole run
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    inference_ms: float = 0.0  # mean over the recent window
    source_state: str = SourceState.CONNECTING.value
    source_message: str = ""
    paused: bool = False
    running: bool = False
    model: str = ""
    workers: int = 0  # inference workers of the run

    @property
    def ng_rate(self) -> float:
        return self.ng / self.inspected if self.inspected else 0.0


@dataclass
class LiveError:
    """Something went wrong with one frame (scoring or storing); the loop carries on, unless
    ``fatal`` (the run cannot go on as set up, e.g. the ROI does not fit in the frame).
    ``kind``: ``store-image``, ``store-database``, ``score``, ``roi``, ``source``, ``model``."""

    message: str
    frame_id: int | None = None
    exception: BaseException | None = field(default=None, repr=False)
    kind: str = "frame"
    fatal: bool = False


class _Slot:
    """Frames between the capture thread and the inference workers.

    Where frames may be dropped, the slot keeps one frame for each free worker and one more, the
    newest: two frames read at once (a capture that read late catches up) are both inspected when
    a worker is free, and while every worker is busy a new frame replaces the one waiting, so the
    loop inspects the latest part, never a backlog. Otherwise it holds one frame and ``put`` waits."""

    def __init__(self, drop: bool) -> None:
        self.drop = drop
        self._cond = threading.Condition()
        self._frames: collections.deque[Frame] = collections.deque()
        self._free = 0  # workers ready for a frame (``ready``) that have not taken one yet
        self._closed = False
        self.dropped = 0

    def put(self, frame: Frame, stop: threading.Event) -> None:
        with self._cond:
            if not self.drop:
                while self._frames and not self._closed and not stop.is_set():
                    self._cond.wait(0.1)
                if self._frames:  # stopping: the waiting frame stays uninspected
                    return
            while len(self._frames) > self._free:
                self._frames.popleft()
                self.dropped += 1
            self._frames.append(frame)
            self._cond.notify_all()

    def ready(self) -> None:
        """A worker is free for a frame (and will ``get`` one)."""
        with self._cond:
            self._free += 1

    def get(self, timeout: float) -> Frame | None:
        with self._cond:
            if not self._frames and not self._closed:
                self._cond.wait(timeout)
            if not self._frames:
                return None
            self._free = max(self._free - 1, 0)
            frame = self._frames.popleft()
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        with self._cond:
            return self._closed and not self._frames


@dataclass
class _Job:
    """A frame a worker took: its place in the commit order and what it is inspected with."""

    ticket: int  # 0, 1, 2 ... in the order frames were taken
    frame: Frame
    predictor: Predictor | None
    roi: Roi | None
    roi_error: RoiError | None = None  # the ROI does not fit this frame (a later one than the first)


@dataclass
class _Scored:
    """A taken frame after its worker: what the commit thread stores and reports."""

    job: _Job
    region: np.ndarray | None = None
    outcome: Prediction | Exception | None = None  # None: scoring was interrupted (or not tried)
    inference_ms: float = 0.0


class _InOrder:
    """Scored frames from the workers to the commit thread, in ticket order. At most ``limit``
    wait ahead of the ticket next in line; a worker with another waits (the next in line never
    does, so the workers cannot block each other for good)."""

    def __init__(self, workers: int) -> None:
        self._cond = threading.Condition()
        self._waiting: dict[int, _Scored] = {}
        self._next = 0
        self._limit = workers
        self._workers = workers

    def put(self, scored: _Scored) -> None:
        ticket = scored.job.ticket
        with self._cond:
            while len(self._waiting) >= self._limit and ticket != self._next:
                self._cond.wait(0.1)
            self._waiting[ticket] = scored
            self._cond.notify_all()

    def worker_done(self) -> None:
        with self._cond:
            self._workers -= 1
            self._cond.notify_all()

    def next(self) -> _Scored | None:
        """The next frame in capture order; None once every worker is done and all are handed on."""
        with self._cond:
            while self._next not in self._waiting:
                if self._workers == 0:  # every ticket taken was put before its worker ended
                    return None
                self._cond.wait(0.1)
            scored = self._waiting.pop(self._next)
            self._next += 1
            self._cond.notify_all()
            return scored


class LiveInspector:
    """Runs a source through a predictor into a results store, in background threads (a capture
    thread, ``device.live_threads()`` inference workers and a commit thread).

    ``start()`` returns at once; ``run()`` blocks until the source ends, ``max_frames`` results
    are in, or ``stop()`` / the cancel token. Callbacks (called from the loop's threads):
    ``on_result(LiveResult)`` after each commit, ``on_state(StateChange)`` when the source
    connects / goes live / is lost / ends, ``on_error(LiveError)`` for a frame that failed,
    ``on_paused(LiveResult | None)`` when the loop pauses (on NG when ``pause_on_ng``). Results and
    their errors are reported one at a time, in capture order.
    """

    def __init__(
        self,
        source: FrameSource,
        predictor: Predictor,
        store: ResultsStore | None = None,
        roi: Roi | None = None,
        max_frames: int | None = None,
        pause_on_ng: bool = False,
        keep_recent_ng: int = 20,
        on_result: Callable[[LiveResult], None] | None = None,
        on_state: Callable[[StateChange], None] | None = None,
        on_error: Callable[[LiveError], None] | None = None,
        on_paused: Callable[[LiveResult | None], None] | None = None,
        cancel: CancelToken | None = None,
        stats_window: int = 300,
        outputs: LineOutputs | None = None,
    ) -> None:
        if outputs is not None and store is None:
            raise ValueError("line outputs deliver from the results store: give a store too")
        self.source = source
        self.store = store
        self.outputs = outputs
        self.roi = roi
        self.max_frames = max_frames
        self.pause_on_ng = pause_on_ng
        self.on_result = on_result
        self.on_state = on_state
        self.on_error = on_error
        self.on_paused = on_paused
        self.cancel = cancel or CancelToken()
        self.recent_ng: collections.deque[LiveResult] = collections.deque(maxlen=keep_recent_ng)
        self._predictor = predictor
        self._predictor_lock = threading.Lock()
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._slot = _Slot(drop=source.drops_frames)
        self._take_lock = threading.Lock()  # one worker at a time takes a frame (and its ticket)
        self._taken = 0  # frames taken, judged or not: max_frames bounds them, so a failing model ends too
        self._scored: _InOrder | None = None  # made by start(), for its number of workers
        self._seq = 0  # results committed (LiveResult.seq)
        self._threads: list[threading.Thread] = []
        self._stats_lock = threading.Lock()
        self._stats = LiveStats()
        self._latencies: collections.deque[float] = collections.deque(maxlen=stats_window)
        self._inference: collections.deque[float] = collections.deque(maxlen=stats_window)
        self._done_times: collections.deque[float] = collections.deque(maxlen=stats_window)
        self._first_done: float | None = None
        self._follow: tuple | None = None
        self._roi_checked = False  # the first frame checks the ROI; one that does not fit stops the run
        self._frame_shape: tuple[int, ...] | None = None
        self.fatal: LiveError | None = None
        self.last_result: LiveResult | None = None
        self.finished = threading.Event()
        self._stats.model = ref_text(*self._model_of(predictor)) if predictor is not None else "(none)"

    # --- control --------------------------------------------------------------------------------
    def start(self) -> "LiveInspector":
        if self._threads:
            raise RuntimeError("this LiveInspector was already started; make a new one")
        from inspector.engine.device import live_threads

        workers = live_threads()  # before the workers start: each takes torch's count at its first op
        with self._stats_lock:
            self._stats.running = True
            self._stats.workers = workers
        self._scored = _InOrder(workers)
        self._threads = [threading.Thread(target=self._capture_loop, name="live-capture", daemon=True),
                         threading.Thread(target=self._commit_loop, name="live-commit", daemon=True)]
        self._threads += [threading.Thread(target=self._worker_loop, name=f"live-inference-{i + 1}", daemon=True)
                          for i in range(workers)]
        for t in self._threads:
            t.start()
        return self

    def run(self) -> LiveStats:
        """Start (if needed) and block until finished; Ctrl-C stops cleanly."""
        if not self._threads:
            self.start()
        try:
            while not self.finished.wait(0.2):
                pass
        finally:
            self.stop()
        return self.stats()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every thread (the frames being scored are finished and committed first, in order)."""
        self._stop.set()
        self.cancel.cancel()
        self._resume.set()
        self._slot.close()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(max(deadline - time.monotonic(), 0.0))
        with self._stats_lock:
            self._stats.running = False
        self.finished.set()

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self.finished.is_set()

    def pause(self) -> None:
        self._resume.clear()
        with self._stats_lock:
            self._stats.paused = True

    def resume(self) -> None:
        with self._stats_lock:
            self._stats.paused = False
        self._resume.set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    def set_roi(self, roi: Roi | None) -> None:
        """Takes effect on the next frame. RoiError (and no change) when frames have been seen
        and it does not fit in them."""
        if self._frame_shape is not None:
            check_roi(roi, self._frame_shape)
        self.roi = roi

    # --- the model -------------------------------------------------------------------------------
    @property
    def predictor(self) -> Predictor:
        with self._predictor_lock:
            return self._predictor

    def set_predictor(self, predictor: Predictor) -> None:
        """Hot swap: frames being scored finish with the old model, the frames taken next use this one."""
        with self._predictor_lock:
            self._predictor = predictor
        with self._stats_lock:
            self._stats.model = ref_text(*self._model_of(predictor))
        log.info("live inspection now uses %s", self._stats.model)

    def follow_registry(self, registry, name: str, interval_s: float = 2.0, device: str = "auto") -> None:
        """Swap to the registry's active version of ``name`` whenever it changes (promote/rollback
        from another window or process). Checked every ``interval_s`` by the worker taking a frame."""
        self._follow = (registry, name, interval_s, device, time.monotonic())

    def _check_follow(self) -> None:
        if self._follow is None:
            return
        registry, name, interval, device, last = self._follow
        now = time.monotonic()
        if now - last < interval:
            return
        self._follow = (registry, name, interval, device, now)
        try:
            entry = registry.active(name)
        except Exception as e:  # noqa: BLE001 — a registry hiccup must not stop inspection
            self._error(LiveError(f"cannot read the active version of '{name}': {e}", exception=e, kind="model"))
            return
        current = self.predictor
        if current is None or (current.info.name, current.info.version) != (entry.name, entry.version):
            from inspector.engine.predictor import Predictor

            try:
                self.set_predictor(Predictor.open(entry.path, device, registry=registry))
            except Exception as e:  # noqa: BLE001
                self._error(LiveError(f"cannot load {ref_text(entry.name, entry.version)}: {e}", exception=e, kind="model"))

    @staticmethod
    def _model_of(predictor: Predictor | None) -> tuple[str, int]:
        if predictor is None:
            return "(none)", 0
        info = predictor.info
        return (info.name or "(unregistered)"), int(info.version)

    # --- statistics -------------------------------------------------------------------------------
    def stats(self) -> LiveStats:
        with self._stats_lock:
            s = LiveStats(**{k: getattr(self._stats, k) for k in self._stats.__dataclass_fields__})
            latencies = np.array(self._latencies) if self._latencies else None
            inference = list(self._inference)
            times = list(self._done_times)
        s.dropped = self._slot.dropped
        s.source_state, s.source_message = self.source.state.value, self.source.message
        if latencies is not None:
            s.latency_p50_ms, s.latency_p95_ms = (float(v) for v in np.percentile(latencies, [50, 95]))
            s.inference_ms = float(np.mean(inference))
        now = time.perf_counter()
        recent = [t for t in times if now - t <= 3.0]  # results per second over the last 3 s
        if self.finished.is_set() and s.inspected >= 2 and self._first_done is not None:
            s.fps = (s.inspected - 1) / max(times[-1] - self._first_done, 1e-6)  # the run's own rate, not 0 after it
        elif len(recent) >= 2 and now - recent[-1] < 2.0:
            s.fps = (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)
        return s

    # --- the threads --------------------------------------------------------------------------------
    def _capture_loop(self) -> None:
        try:
            for frame in self.source.frames(self._stop, on_state=self._state_changed):
                self._slot.put(frame, self._stop)
                if self._stop.is_set():
                    break
        except Exception as e:  # noqa: BLE001 — report, never kill the app
            self._error(LiveError(f"frame source failed: {type(e).__name__}: {e}", exception=e, kind="source"))
        finally:
            self._slot.close()

    def _state_changed(self, change: StateChange) -> None:
        with self._stats_lock:
            self._stats.source_state, self._stats.source_message = change.state.value, change.message
        if self.outputs is not None:
            self.outputs.set_state("source-lost" if change.state in (SourceState.LOST, SourceState.ENDED) else "ready")
        if self.on_state is not None:
            try:
                self.on_state(change)
            except Exception:
                log.exception("on_state callback failed")

    def _worker_loop(self) -> None:
        try:
            while True:
                self._slot.ready()
                if (job := self._take()) is None:
                    break
                self._inspect(job)
        finally:
            self._scored.worker_done()

    def _commit_loop(self) -> None:
        try:
            while (scored := self._scored.next()) is not None:
                while not self._resume.wait(0.1) and not self._stop.is_set():
                    pass  # paused: the result paused on stays the last one reported
                try:
                    self._commit(scored)
                except Exception as e:  # a bug here must not stop the frames after it
                    frame_id = scored.job.frame.frame_id
                    log.exception("committing frame %s failed", frame_id)
                    self._error(LiveError(f"frame {frame_id} not committed: {type(e).__name__}: {e}", frame_id, e))
        finally:  # every frame taken is committed: the run is over
            self._stop.set()
            self._slot.close()
            with self._stats_lock:
                self._stats.running = False
            self.finished.set()

    def _take(self) -> _Job | None:
        """The next frame to inspect with its ticket, the predictor and the ROI; None when the run is
        over (stopped, the source ended, ``max_frames`` taken, or the ROI does not fit the first frame)."""
        with self._take_lock:
            while True:
                if self._stop.is_set() or self.cancel.cancelled or (self.max_frames and self._taken >= self.max_frames):
                    return None
                if not self._resume.wait(0.1):
                    continue
                self._check_follow()
                frame = self._slot.get(0.1)
                if frame is None:
                    if self._slot.finished:
                        return None
                    continue
                roi, roi_error = self.roi, None
                self._frame_shape = frame.image.shape
                try:
                    check_roi(roi, frame.image.shape)
                    self._roi_checked = True
                except RoiError as e:
                    if not self._roi_checked:  # set up wrong: stop with one clear line, not a warning per frame
                        self._fatal(LiveError(str(e), frame.frame_id, e, kind="roi", fatal=True))
                        return None
                    roi_error = e
                self._taken += 1
                return _Job(self._taken - 1, frame, self.predictor, roi, roi_error)

    def _inspect(self, job: _Job) -> None:
        """Score one frame (side by side with the other workers) and hand it to the commit thread."""
        scored = _Scored(job)
        try:
            if job.roi_error is None and job.predictor is not None:
                started = time.perf_counter()
                try:
                    scored.region = crop(job.frame.image, job.roi)
                    scored.outcome = job.predictor.predict(np.ascontiguousarray(scored.region), reconstruct=False)
                    _ = scored.outcome.regions  # found here, side by side: every result stores them
                except Exception as e:  # noqa: BLE001 — one bad frame is reported, stored as NG, and inspection goes on
                    scored.outcome = e
                scored.inference_ms = (time.perf_counter() - started) * 1000
        finally:  # whatever happened, the frame is committed in its place: the ones after it wait for it
            self._scored.put(scored)

    def _commit(self, scored: _Scored) -> None:
        """Store one frame's result and report it; a frame not judged is counted, reported and stored as NG."""
        job, region, outcome, inference_ms = scored.job, scored.region, scored.outcome, scored.inference_ms
        frame, predictor, roi = job.frame, job.predictor, job.roi
        name, version = self._model_of(predictor)
        if job.roi_error is not None:
            self._unjudged(frame, name, version, None, f"frame {frame.frame_id} not inspected: {job.roi_error}", "roi", job.roi_error)
            return
        if predictor is None:
            self._unjudged(frame, name, version, roi, f"frame {frame.frame_id} not inspected: no model loaded", "model")
            return
        if outcome is None:  # the worker was interrupted while scoring
            outcome = RuntimeError("scoring did not finish")
        if isinstance(outcome, Exception):
            e = outcome
            self._unjudged(frame, name, version, roi,
                           f"frame {frame.frame_id} could not be scored: {type(e).__name__}: {e}", "score", e,
                           region=region, threshold=getattr(predictor, "threshold", None))
            return
        prediction = outcome
        record_id, store_error = None, None
        if self.store is not None:
            record_id, store_error = self._store(
                frame, model=name, model_version=version, score=prediction.score, threshold=prediction.threshold,
                decision=prediction.decision, image=prediction.image, roi=roi,
                regions=prediction.regions, rule=prediction.reason,  # every result keeps its defect regions
            )
        latency_ms = (time.perf_counter() - frame.captured) * 1000
        self._seq += 1
        self._deliver(LiveResult(frame, prediction, roi, name, version, record_id, latency_ms, inference_ms, self._seq,
                                 stored=record_id is not None, store_error=store_error))

    def _store(self, frame: Frame, **fields) -> tuple[int | None, str | None]:
        """Commit one row: (id, None), or (None, why) after counting and reporting the failure.
        The line outputs send a committed row from the outbox, and an uncommitted one from memory."""
        try:
            row_id = self.store.record(source=frame.source, frame_id=frame.frame_id, frame_name=frame.name,
                                       timestamp=frame.timestamp, latency_ms=(time.perf_counter() - frame.captured) * 1000,
                                       **fields)
            if self.outputs is not None:
                self.outputs.stored()
            return row_id, None
        except Exception as e:  # noqa: BLE001 — e.g. disk full: count it, say so, keep inspecting
            message = str(e) if isinstance(e, StoreError) else \
                f"result of frame {frame.frame_id} not stored: {type(e).__name__}: {e}"
            kind = f"store-{e.kind}" if isinstance(e, StoreError) and e.kind in ("image", "database") else "store-database"
            with self._stats_lock:
                self._stats.unsaved += 1
                self._stats.store_alarm = message
            self._error(LiveError(message, frame.frame_id, e, kind=kind))
            if self.outputs is not None:
                self._send_unstored(frame, fields, message)
            return None, message

    def _send_unstored(self, frame: Frame, fields: dict, why: str) -> None:
        from inspector.engine.sinks.message import unstored_verdict

        self.outputs.unstored(unstored_verdict(
            self.outputs.station, frame_id=frame.frame_id, frame_name=frame.name, source=frame.source, timestamp=frame.timestamp,
            model=fields["model"], model_version=fields["model_version"], score=fields["score"], threshold=fields["threshold"],
            decision=fields["decision"], why=why, error=fields.get("error"), rule=fields.get("rule")))

    def _unjudged(self, frame: Frame, name: str, version: int, roi: Roi | None, message: str, kind: str,
                  exception: BaseException | None = None, region: np.ndarray | None = None,
                  threshold: float | None = None) -> None:
        """A frame that could not be judged: counted, reported, and stored as NG with the reason."""
        with self._stats_lock:
            self._stats.unjudged += 1
        self._error(LiveError(message, frame.frame_id, exception, kind=kind))
        if self.store is not None:
            image = region if region is not None else frame.image
            self._store(frame, model=name, model_version=version, score=float("nan"),
                        threshold=float("nan") if threshold is None else threshold, decision="NG",
                        image=image if image.dtype == np.uint8 else None, roi=roi, error=message)
        return None

    def _fatal(self, error: LiveError) -> None:
        self.fatal = error
        with self._stats_lock:
            self._stats.fatal = error.message
        self._error(error)
        if self.outputs is not None:  # the line must not wait for parts that will not come
            self.outputs.set_state("error")
        self._stop.set()

    def _deliver(self, result: LiveResult) -> None:
        with self._stats_lock:
            self._stats.inspected += 1
            self._stats.ng += result.decision == NG
            self._latencies.append(result.latency_ms)
            self._inference.append(result.inference_ms)
            self._done_times.append(time.perf_counter())
            if self._first_done is None:
                self._first_done = self._done_times[-1]
        self.last_result = result
        if result.decision == NG:
            self.recent_ng.append(result)
        if self.on_result is not None:
            try:
                self.on_result(result)
            except Exception:
                log.exception("on_result callback failed")
        if result.decision == NG and self.pause_on_ng:
            self.pause()
            if self.on_paused is not None:
                try:
                    self.on_paused(result)
                except Exception:
                    log.exception("on_paused callback failed")

    def _error(self, error: LiveError) -> None:
        with self._stats_lock:
            self._stats.errors += 1
        # the owner of on_error shows it (the CLI rate-limits, the GUI shows a message): logging every
        # one of them as well would print the same line hundreds of times on a full disk
        log.log(logging.DEBUG if self.on_error is not None else logging.WARNING, "%s", error.message)
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:
                log.exception("on_error callback failed")
