"""The live application without a screen: what the Live page and ``inspector live`` both do.

One ``LiveController`` holds the model in use (a registry name, or a model file), the results
store and at most one running ``LiveInspector``. It answers what a versions list and a pool
line show (``models``, ``lineage``, ``pool_counts``), starts and stops the run (``load`` then
``start``; the run follows the registry, so a promote or rollback made anywhere swaps the model
without stopping), turns the operator's verdict on a result into feedback for the model's pool,
and retrains, promotes and discards versions.

Every call is plain and blocking: ``load`` and ``retrain`` take seconds to minutes (torch), so
the GUI runs them in its background jobs and the CLI just waits. No Qt here, ever; torch is only
imported by the calls that need it, so building a controller costs nothing at start-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.data.sources import FrameSource, open_source
from inspector.engine.results_store import ResultsStore, default_db_path

if TYPE_CHECKING:
    from inspector.engine.events import CancelToken
    from inspector.engine.live import LiveError, LiveInspector, LiveResult, LiveStats, Roi
    from inspector.engine.predictor import Predictor
    from inspector.engine.registry import Entry, ModelRegistry
    from inspector.engine.retrain import RetrainData, RetrainResult
    from inspector.engine.sinks import LineOutputs, SinkStatus

log = logging.getLogger(__name__)

WARN_EVERY_S = 30.0  # a repeated problem of one kind is shown at most this often (a full disk fails every frame)


class ErrorThrottle:
    """Which of a run's non-fatal problems to show: each kind at once, then at most every
    ``every_s`` seconds, with how many were held back meanwhile (the run's counters count all)."""

    def __init__(self, every_s: float = WARN_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._seen: dict[str, list] = {}  # kind -> [when last shown, how many held back since]

    def admit(self, kind: str) -> int | None:
        """None: hold this one back; else show it, with the number held back before it."""
        now = self._clock()
        seen = self._seen.get(kind)
        if seen is not None and now - seen[0] < self.every_s:
            seen[1] += 1
            return None
        self._seen[kind] = [now, 0]
        return seen[1] if seen else 0


def registry_name(ref: str | Path) -> str | None:
    """The registry name a run on ``ref`` follows: a bare name does (its version in use may
    change), a pinned ``name@vN``, a model file or an exported model's folder does not."""
    from inspector.engine.bundle import MODEL_SUFFIX
    from inspector.engine.exported import is_exported
    from inspector.engine.modelref import ModelRef

    text = str(ref)
    if Path(text).suffix == MODEL_SUFFIX or Path(text).is_file() or is_exported(text) or ModelRef.parse(text).version is not None:
        return None
    return text


class LiveController:
    """The model in use, its versions and pool, the results store and the live run.

    ``registry``: a ``ModelRegistry`` or a function returning one (the GUI's session may replace
    its registry); default: the user's registry, made when first needed. ``store_path``: the
    results database (default: the one ``inspector history`` reads).
    """

    def __init__(
        self,
        registry: ModelRegistry | Callable[[], ModelRegistry] | None = None,
        store_path: str | Path | None = None,
        device: str = "auto",
        runtime: str = "auto",
        save_ok_every: int = 0,
        synchronous: str = "NORMAL",
    ) -> None:
        self._registry = registry
        self.store_path = Path(store_path) if store_path else None
        self.device = device
        self.runtime = runtime  # what runs an exported model (a trained one runs on torch)
        self.save_ok_every = max(0, int(save_ok_every))
        self.synchronous = synchronous
        self.model_name = ""  # the registry name lineage, pool, retrain and promote are about
        self.store: ResultsStore | None = None
        self.live: LiveInspector | None = None
        self.outputs: LineOutputs | None = None  # the run's line outputs (sinks)

    # --- the registry and the model in use ----------------------------------------------------------
    def registry(self) -> ModelRegistry:
        if callable(self._registry):
            return self._registry()
        if self._registry is None:
            from inspector.engine.registry import ModelRegistry

            self._registry = ModelRegistry()
        return self._registry

    def models(self) -> list[tuple[str, int]]:
        """Every registered model with the version in use."""
        registry = self.registry()
        return [(name, registry.active(name).version) for name in registry.names()]

    def select(self, name: str) -> None:
        """Choose the registered model that lineage, pool, retrain and promote are about."""
        self.model_name = name or ""

    def lineage(self) -> list[dict[str, Any]]:
        """The versions of the chosen model, oldest first (see ``retrain.lineage``)."""
        if not self.model_name:
            return []
        from inspector.engine.retrain import lineage

        return lineage(self.registry(), self.model_name)

    def pool_counts(self, name: str | None = None) -> dict[str, int]:
        """False alarms and confirmed defects in the pool of ``name`` (default: the chosen model).
        ValueError for a name that cannot name a pool folder (a model file's odd name)."""
        from inspector.engine.retrain import FeedbackPool

        return FeedbackPool(name or self.model_name).counts()

    def load(self, ref: str | Path | None = None) -> Predictor:
        """The predictor for ``ref`` (a registry name, ``name@vN`` or a model file; default: the
        chosen model's version in use) or an exported model's folder. Blocking: loads the
        runtime and the weights. The results of an unregistered file are labelled with its name."""
        from inspector.engine.exported import is_exported
        from inspector.engine.predictor import Predictor

        target = ref if ref is not None else self.model_name
        if not target:
            raise ValueError("choose a model first")
        # one runtime thread: live mode scores frames side by side, one worker per core (device.live_threads)
        if is_exported(target):  # scored without torch and without the registry
            path = Path(target)
            predictor = Predictor.open(path, self.device, runtime=self.runtime, threads=1)
        else:
            registry = self.registry()
            path = registry.resolve(target)
            predictor = Predictor.open(path, self.device, registry=registry, runtime=self.runtime, threads=1)
        if not predictor.info.name:
            predictor.info.name = Path(path).stem
        return predictor

    # --- the results store ------------------------------------------------------------------------------
    def open_store(self) -> ResultsStore:
        """The results database, opened (and made) on first use."""
        if self.store is None:
            self.store = ResultsStore(self.store_path, save_ok_every=self.save_ok_every, synchronous=self.synchronous)
        return self.store

    def existing_store(self) -> ResultsStore | None:
        """The results database if it exists (a history view must not make an empty one)."""
        if self.store is None and (self.store_path or default_db_path()).is_file():
            self.open_store()
        return self.store

    def set_save_ok_every(self, n: int) -> None:
        """Keep the image of every ``n``-th OK frame too (0 = none); the store reads it per result."""
        self.save_ok_every = max(0, int(n))
        if self.store is not None:
            self.store.save_ok_every = self.save_ok_every

    # --- the run ------------------------------------------------------------------------------------------
    @staticmethod
    def open_source(text: str | int, **options) -> FrameSource:
        """The frame source for what was typed or given (``open_source``'s options); ValueError
        or SourceError with one line when it names nothing usable."""
        return open_source(text, **options)

    def start(
        self,
        source: FrameSource,
        predictor: Predictor,
        roi: Roi | None = None,
        *,
        follow: str | None = None,
        follow_interval_s: float = 2.0,
        max_frames: int | None = None,
        pause_on_ng: bool = False,
        keep_recent_ng: int = 20,
        on_result: Callable[[LiveResult], None] | None = None,
        on_state: Callable[[Any], None] | None = None,
        on_error: Callable[[LiveError], None] | None = None,
        sinks: Sequence[str] = (),
        station: str = "station",
        triggered: bool = False,
    ) -> LiveInspector:
        """Start inspecting ``source`` with ``predictor`` into the store (opened if needed); returns
        at once. ``follow``: a registry name whose version in use the run swaps to when it changes.
        ``sinks``: line outputs (``engine.sinks.open_sink`` URLs) that get every verdict, from
        where each stopped last time; ValueError for a bad one, before anything starts.
        ``triggered``: one frame per trigger from the sinks (a PLC's trigger), not free-running."""
        from inspector.engine.live import LiveInspector
        from inspector.engine.sinks import LineOutputs

        if self.running:
            raise RuntimeError("live inspection is running already; stop it first")
        if follow:
            self.model_name = follow
        if triggered and not sinks:
            raise ValueError("a triggered station needs a line output that takes triggers "
                             "(--sink opcua://, modbus://, mqtt://, http+server://)")
        store = self.open_store()
        self.outputs = LineOutputs.open(list(sinks), store, station) if sinks else None
        if self.outputs is not None:
            self.outputs.start()
        if triggered:
            from inspector.data.trigger import TriggeredSource

            source = TriggeredSource(source, self.outputs.gate)
        self.live = LiveInspector(source, predictor, store, roi=roi, max_frames=max_frames,
                                  pause_on_ng=pause_on_ng, keep_recent_ng=keep_recent_ng,
                                  on_result=on_result, on_state=on_state, on_error=on_error, outputs=self.outputs)
        if follow:
            self.live.follow_registry(self.registry(), follow, interval_s=follow_interval_s, device=self.device)
        return self.live.start()

    def stop(self, timeout: float = 5.0, drain_s: float = 2.0) -> LiveStats | None:
        """Stop the run (the frame being scored is committed first; the line outputs get up to
        ``drain_s`` seconds to deliver what is waiting, the rest stays in the outbox for the
        next start); its final figures."""
        if self.live is None:
            return None
        self.live.stop(timeout=timeout)
        if self.outputs is not None:
            self.outputs.stop(drain_s=drain_s)
            self.outputs = None
        return self.live.stats()

    def send_test_verdict(self, sinks: Sequence[str] = (), station: str = "station", timeout: float = 5.0) -> dict[str, str]:
        """A test verdict (``message.test_verdict``) to each line output: during a run through the
        run's sinks, in order with the real ones (answers '' at once: their status shows how it
        went); else to each of ``sinks`` opened for the purpose. Sink key -> '' (delivered) or
        why not."""
        from inspector.engine.sinks import SinkError, open_sink
        from inspector.engine.sinks.message import test_verdict

        if self.outputs is not None:
            self.outputs.unstored(test_verdict(self.outputs.station))
            return {d.sink.key: "" for d in self.outputs.deliveries}
        answers = {}
        for url in sinks:
            try:
                sink = open_sink(url, station)
            except ValueError as e:
                answers[url] = str(e)
                continue
            try:
                sink.start()
                sink.send(test_verdict(station), timeout)
                answers[sink.key] = ""
            except (SinkError, OSError) as e:
                answers[sink.key] = str(e)
            finally:
                sink.close()
        return answers

    def line_status(self) -> list[SinkStatus]:
        """Each line output's state, backlog and latency (empty without sinks)."""
        return self.outputs.status() if self.outputs is not None else []

    def close(self, drain_s: float = 2.0) -> None:
        """Stop the run and close the store (the window closes, the command ends)."""
        self.stop(drain_s=drain_s)
        if self.store is not None:
            self.store.close()
            self.store = None

    @property
    def running(self) -> bool:
        return self.live is not None and self.live.running

    @property
    def paused(self) -> bool:
        return self.running and self.live.paused

    def resume(self) -> None:
        if self.live is not None and self.live.paused:
            self.live.resume()

    def set_pause_on_ng(self, on: bool) -> None:
        if self.live is not None:
            self.live.pause_on_ng = on
            if not on:
                self.resume()

    def set_roi(self, roi: Roi | None) -> None:
        """Takes effect on the next frame; RoiError (nothing changed) when it does not fit in
        the frames seen so far."""
        if self.live is not None:
            self.live.set_roi(tuple(roi) if roi else None)

    # --- feedback, retraining, versions -------------------------------------------------------------------
    def give_feedback(self, result: LiveResult, feedback: str) -> Path | None:
        """The operator's verdict on a stored result: into the store, and its inspected image
        into the pool of the result's model. ValueError for a result that is not stored."""
        from inspector.engine.retrain import FeedbackPool, give_feedback

        if result.record_id is None or self.store is None:
            raise ValueError(f"frame {result.frame.frame_id} is not stored: there is nothing to mark")
        return give_feedback(self.store, result.record_id, feedback, image=result.prediction.image,
                             pool=FeedbackPool(result.model))

    def retrain(self, data: RetrainData | None = None, epochs: int | None = None,
                on_event: Callable[[Any], None] | None = None, cancel: CancelToken | None = None,
                name: str | None = None) -> RetrainResult:
        """Fine-tune a new candidate version of ``name`` (default: the chosen model), not in use
        until promoted. Blocking, for minutes: inspection goes on in the run's own threads."""
        from inspector.engine.retrain import Retrainer

        return Retrainer(self.registry(), self._name(name), data=data, epochs=epochs, on_event=on_event,
                         cancel=cancel).run()

    def promote(self, version: int, name: str | None = None) -> Entry:
        """Put ``version`` in use (a new one, or an earlier one: a rollback); a run on that model
        swaps to it at the next frame."""
        from inspector.engine.predictor import Predictor
        from inspector.engine.retrain import promote

        name = self._name(name)
        entry = promote(self.registry(), name, int(version))
        if self.running and self.live.predictor is not None and self.live.predictor.info.name == name:
            self.live.set_predictor(Predictor.open(entry.path, self.device, registry=self.registry()))
        log.info("%s@v%d is in use", name, entry.version)
        return entry

    def discard(self, version: int, name: str | None = None) -> None:
        """Delete a candidate version (never the one in use)."""
        from inspector.engine.retrain import discard

        discard(self.registry(), self._name(name), int(version))

    def _name(self, name: str | None) -> str:
        name = name or self.model_name
        if not name:
            raise ValueError("choose a model first")
        return name
