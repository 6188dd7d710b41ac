"""Every capability, headless: ``inspector data|train|eval|predict|models|methods|demo``; and ``gui``, the desktop app.

Errors are one clear line on stderr and a non-zero exit code (set INSPECTOR_DEBUG=1 for the
traceback). ``--json`` prints machine-readable output only, on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from inspector.engine.demo import DEMO_METHOD

EXIT_ERROR = 2
EXIT_UNREADABLE = 3
MAX_EPOCHS = 10_000
MAX_BATCH = 4096
MAX_SEED = 2**32 - 1


class CliError(Exception):
    """An error whose message is all the user needs."""


# --- output helpers ---------------------------------------------------------------------------
class ProgressBar:
    """A one-line progress bar on stderr; plain periodic lines when stderr is not a terminal."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def update(self, done: int, total: int, extra: str = "", force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self.tty else 5.0) and done < total:
            return
        self._last = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 24)
        line = f"{self.label} [{bar:<24}] {done}/{total} {extra}"
        if self.tty:
            sys.stderr.write("\r" + line[:120].ljust(120))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error style: one line on stderr, exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_ERROR)


def _number_in(kind: type, low: float | None, high: float | None, low_open: bool = False, power_of_two: bool = False):
    """An argparse type: a number of ``kind`` in [low, high] (``low_open``: (low, high]), refused at
    parse time with the allowed range in the message."""
    def shown(v):
        return f"{v:g}" if isinstance(v, float) else str(v)

    if high is None:
        span = f"{'more than' if low_open else 'at least'} {shown(low)}"
    else:
        span = f"more than {shown(low)} and at most {shown(high)}" if low_open else f"{shown(low)}..{shown(high)}"
    what = "a power of two" if power_of_two else "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} {span}, got '{text}'") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {what} {span}, got '{text}'")
        below = value <= low if low_open else value < low
        if below or (high is not None and value > high) or (power_of_two and value & (value - 1)):
            raise argparse.ArgumentTypeError(f"must be {what} {span}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _registry():
    from inspector.engine.registry import ModelRegistry

    return ModelRegistry()


def _parse_params(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse (numbers, booleans), else strings."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--param expects key=value, got '{item}'")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


# --- commands -----------------------------------------------------------------------------------
def cmd_data_elpv(args: argparse.Namespace) -> int:
    from inspector.data.elpv import materialise_elpv

    bar = ProgressBar("copying ELPV", not args.json)
    ds = materialise_elpv(Path(args.out), seed=args.seed, progress=lambda d, t: bar.update(d, t))
    bar.close()
    if args.json:
        _print_json({"path": str(ds.root), "counts": ds.counts()})
    else:
        print(f"ELPV written to {ds.root}: {ds.counts()}")
    return 0


def _train_config(args: argparse.Namespace):
    from inspector.engine.trainer import TrainConfig
    from inspector.models import get_method

    cls = get_method(args.method)  # clear error for an unknown method before any work
    defaults = cls.Config()
    return TrainConfig(  # validated on construction: bad settings are refused before any work
        method=args.method,
        image_size=defaults.image_size if args.image_size is None else args.image_size,
        channels=defaults.channels if args.channels is None else args.channels,
        epochs=cls.train_defaults["epochs"] if args.epochs is None else args.epochs,
        batch_size=cls.train_defaults["batch_size"] if args.batch_size is None else args.batch_size,
        seed=args.seed,
        device=args.device,
        amp=not args.no_amp,
        augment=args.augment,
        threshold_mode=args.threshold_mode,
        false_alarm_rate=args.false_alarm_rate,
        params=_parse_params(args.param),
    )


def cmd_train(args: argparse.Namespace) -> int:
    from inspector.data.datasets import open_dataset
    from inspector.engine.bundle import ModelBundle
    from inspector.engine.events import TrainProgress
    from inspector.engine.modelref import check_name
    from inspector.engine.trainer import ImagesSkipped, TrainNotice
    from inspector.engine.workflow import train_dataset

    config = _train_config(args)
    if args.name:
        check_name(args.name)  # before any work: the name becomes a folder and a checkpoint file
    dataset = open_dataset(Path(args.data), seed=args.seed)
    registry = _registry()
    init_from = ModelBundle.load(registry.resolve(args.init_from)) if args.init_from else None
    bar = ProgressBar(f"training {config.method}", not args.json)

    def on_event(event) -> None:
        if isinstance(event, TrainProgress) and event.phase == "train":
            losses = " ".join(f"{k}={v:.3g}" for k, v in list(event.losses.items())[:3])
            extra = f"ep {event.epoch}/{event.epochs} {losses} {event.images_per_s:.0f} img/s ETA {_duration(event.eta_s)}"
            bar.update(event.step, event.steps, extra, force=event.step == event.steps)
        elif isinstance(event, TrainProgress) and event.phase == "calibrate" and not args.json:
            bar.close()
            print("calibrating the threshold on held-out good images ...", file=sys.stderr)
        elif isinstance(event, ImagesSkipped):
            for path, reason in event.report.failed:
                print(f"skipped unreadable image {path}: {reason}", file=sys.stderr)
        elif isinstance(event, TrainNotice):  # resumed from a checkpoint, or a checkpoint ignored
            print(event.message if event.kind == "resumed" else f"warning: {event.message}", file=sys.stderr)

    entry = train_dataset(dataset, config, registry, args.name, on_event, init_from=init_from, resume=not args.restart)
    info = entry.info
    if args.json:
        _print_json({"model": info.ref, "path": str(entry.path), **info.to_dict()})
        return 0
    cal = info.metrics.get("calibration", {})
    print(f"saved {info.ref} -> {entry.path}")
    print(f"threshold {info.threshold.value:.6g} ({info.threshold.method})")
    for key, value in cal.items():
        print(f"  {key}: {_fmt(value)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from inspector.data.datasets import open_dataset
    from inspector.engine.evaluate import evaluate
    from inspector.engine.predictor import Predictor
    from inspector.engine.report import write_report

    predictor = Predictor.open(args.model, device=args.device, registry=_registry())
    dataset = open_dataset(Path(args.data), seed=args.seed)
    if not dataset.test:
        raise CliError(f"{args.data} has no test images to evaluate")
    bar = ProgressBar("evaluating", not args.json)
    ev = evaluate(predictor, dataset, progress=lambda p: bar.update(p.done, p.total))
    bar.close()
    if args.out:
        write_report(ev, predictor, Path(args.out), overlays=args.overlays)
    result = ev.to_dict() | ({"report": str(args.out)} if args.out else {})
    if args.json:
        _print_json(result)
        return 0
    for path, reason in ev.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    m = ev.metrics
    print(f"model {ev.model} on {ev.dataset}: {len(ev.rows)} images")
    if m is not None:
        for key in ("image_auroc", "average_precision", "best_f1", "false_alarm_at_90_recall", "threshold", "f1", "precision", "recall", "false_alarm_rate"):
            print(f"  {key:26s} {_fmt(getattr(m, key))}")
        c = m.confusion
        print("  confusion at threshold      predicted OK  predicted NG")
        print(f"    good   ({m.n_good:5d})        {c['tn']:10d}  {c['fp']:12d}")
        print(f"    defect ({m.n_defect:5d})        {c['fn']:10d}  {c['tp']:12d}")
    if ev.pixel_auroc is not None:
        print(f"  {'pixel_auroc':26s} {_fmt(ev.pixel_auroc)}")
    if args.out:
        print(f"report written to {args.out}")
    return 0


def _overlay_names(files: list[Path], bases: dict[Path, Path], out: Path):
    """Where each file's overlay goes: its path relative to the common parent of the command
    line's paths, mirrored under ``out``, plus ``_overlay.png`` (``a/x.png`` ->
    ``OUT/a/x.png_overlay.png``), so ``a/x.png``, ``b/x.png`` and ``a/x.jpg`` never share one; a
    file named twice gets ``-2``, ``-3``... Every path is checked to lie inside ``out``."""
    from inspector.engine.modelref import inside

    roots = [os.path.abspath(b) for b in bases.values()]
    try:
        common = Path(os.path.commonpath(roots)) if roots else Path.cwd()
    except ValueError:  # different drives (Windows): keep each path's own folder
        common = None
    taken: set[str] = set()
    names: list[tuple[Path, Path]] = []
    for f in files:
        absolute = Path(os.path.abspath(f))
        rel = absolute.relative_to(common) if common is not None else Path(absolute.name)
        parts, name = rel.parts[:-1], rel.name + "_overlay"
        candidate, n = Path(*parts, name + ".png"), 1
        while candidate.as_posix().lower() in taken:  # lower: also unique on case-insensitive disks
            n += 1
            candidate = Path(*parts, f"{name}-{n}.png")
        taken.add(candidate.as_posix().lower())
        names.append((f, inside(out, *candidate.parts)))
    return names


def cmd_predict(args: argparse.Namespace) -> int:
    from inspector.data.images import ImageReadError, list_images, write_image
    from inspector.engine.predictor import Predictor
    from inspector.engine.results_store import write_csv

    predictor = Predictor.open(args.model, device=args.device, registry=_registry())
    files: list[Path] = []
    bases: dict[Path, Path] = {}  # each command-line path's folder: overlays mirror the tree below their common parent
    for item in map(Path, args.paths):
        if item.is_dir():
            files += list_images(item, recursive=args.recursive)
            bases[item] = item
        elif item.exists() or item.is_symlink():  # a broken link is reported as unreadable, with the rest scored
            files.append(item)
            bases[item] = item.parent
        else:
            raise CliError(f"no such file or folder: {item}")
    out = Path(args.out) if args.out else None
    overlays: dict[Path, list[Path]] = {}  # a file named twice is yielded twice: each time the next of its names
    for f, name in (_overlay_names(files, bases, out) if out is not None else []):
        overlays.setdefault(f, []).append(name)
    rows, failed = [], []
    bar = ProgressBar("scoring", not args.json and out is not None)
    for path, result in predictor.predict_paths(files, batch_size=args.batch_size, progress=lambda p: bar.update(p.done, p.total)):
        if isinstance(result, ImageReadError):
            failed.append({"path": str(path), "reason": result.reason})
            if not args.json:
                print(f"skipped {path}: {result.reason}", file=sys.stderr)
            continue
        row = {"path": str(path), "score": result.score, "threshold": result.threshold, "decision": result.decision}
        if out is not None:
            overlay = overlays[path].pop(0)
            write_image(overlay, result.overlay(args.opacity))
            row["overlay"] = str(overlay)
        rows.append(row)
        if not args.json and out is None:
            print(f"{result.decision}  {result.score:10.5g}  {path}")
    bar.close()
    if args.csv:
        write_csv(args.csv, ["path", "score", "threshold", "decision", "error"],
                  [[r["path"], r["score"], r["threshold"], r["decision"], ""] for r in rows]
                  + [[f["path"], "", "", "", f["reason"]] for f in failed],
                  text_columns=("path", "error"))
    ng = sum(r["decision"] == "NG" for r in rows)
    if args.json:
        _print_json({"model": predictor.info.ref, "results": rows, "unreadable": failed})
    else:
        if out is not None:
            for r in rows:
                print(f"{r['decision']}  {r['score']:10.5g}  {r['path']}")
        print(f"{len(rows)} scored ({ng} NG), {len(failed)} unreadable", file=sys.stderr)
    if not rows and files:
        raise CliError("none of the images could be read")
    return EXIT_UNREADABLE if failed and args.strict else 0


def cmd_models(args: argparse.Namespace) -> int:
    from inspector.engine.modelref import ModelRef

    registry = _registry()
    if args.action == "list":
        return _models_list(registry, args.json)
    if not args.model:
        raise CliError(f"models {args.action} needs a model name")
    if args.action == "show":
        from inspector.engine.bundle import read_info

        path = registry.resolve(args.model)
        info = read_info(path)
        versions = [_entry_summary(e) for e in registry.versions(info.name)] if info.name in registry.names() else []
        data = {"path": str(path), **info.to_dict(), "versions": versions}
        if args.json:
            _print_json(data)
        else:
            print(json.dumps(data, indent=2, default=str))
        return 0
    if args.action == "import":
        entry = registry.import_file(_existing_file(args.model), name=args.name)
        return _answer(args.json, _entry_summary(entry), f"imported {args.model} as {entry.info.ref}")
    if args.action == "export":
        if not args.new_name:
            raise CliError("models export needs MODEL DESTINATION")
        dest = registry.export(args.model, args.new_name, overwrite=args.force)
        print(f"exported to {dest}")
        return 0
    ref = ModelRef.parse(args.model)
    if args.action == "delete":
        count = registry.delete(ref.name, ref.version)
        return _answer(args.json, {"deleted": count}, f"deleted {count} model file(s) of '{ref.name}'")
    if args.action == "activate":
        if ref.version is None:
            raise CliError("models activate needs NAME@vN, e.g. solar@v2")
        entry = registry.set_active(ref.name, ref.version)
        return _answer(args.json, {"name": ref.name, "version": entry.version},
                       f"'{ref.name}' now uses version {entry.version} (live inspection following '{ref.name}' switches to it)")
    if args.action == "rename":
        if not args.new_name:
            raise CliError("models rename needs NAME NEW_NAME")
        if ref.version is not None:
            raise CliError("models rename renames a model with all its versions: give NAME, not NAME@vN")
        registry.rename(ref.name, args.new_name)
        print(f"renamed '{ref.name}' to '{args.new_name}'")
        return 0
    raise CliError(f"unknown action {args.action}")


def _answer(as_json: bool, data: Any, text: str) -> int:
    """A command's result: ``data`` as JSON with ``--json``, else ``text``."""
    if as_json:
        _print_json(data)
    else:
        print(text)
    return 0


def _models_list(registry, as_json: bool) -> int:
    """The version in use of every model, then every file that cannot be read (listed, not fatal)."""
    entries, broken = registry.list(), registry.broken()
    if as_json:
        _print_json({
            "models": [_entry_summary(e) | {"versions": len(registry.versions(e.name))} for e in entries],
            "broken": [{"name": b.name, "version": b.version, "path": str(b.path), "error": b.error} for b in broken],
        })
        return 0
    if not entries and not broken:
        print(f"no models yet in {registry.root}")
        return 0
    if entries:
        print(f"{'name':28s} {'in use':>6s} {'latest':>6s} {'method':22s} {'threshold':>10s}  created")
    for e in entries:
        latest = registry.latest(e.name).version
        print(f"{e.name:28s} {'v' + str(e.version):>6s} {'v' + str(latest):>6s} {e.info.method:22s} {e.info.threshold.value:10.4g}  {e.info.created}")
    for b in broken:
        print(f"{b.name + '@v' + str(b.version):28s} BROKEN  {b.error}")
    return 0


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise CliError(f"no such model file: {path}")
    return path


def _entry_summary(e) -> dict[str, Any]:
    return {
        "name": e.name,
        "version": e.version,
        "path": str(e.path),
        "method": e.info.method,
        "created": e.info.created,
        "parent": e.info.parent,
        "threshold": e.info.threshold.value,
        "image_size": e.info.image_size,
        "dataset": e.info.training.get("dataset"),
        "metrics": e.info.metrics,
    }


def _live_model(ref: str, device: str, registry):
    """The predictor for ``--model`` and, for a bare registry name, that name: the live loop then
    follows the registry's version in use (a promote or rollback elsewhere swaps it live)."""
    from inspector.engine.bundle import ModelBundle
    from inspector.engine.predictor import Predictor

    path = registry.resolve(ref)
    predictor = Predictor(ModelBundle.load(path), device)
    if not predictor.info.name:
        predictor.info.name = Path(path).stem  # results of an unregistered file are labelled by its name
    is_file = Path(ref).suffix == ".inspector" or Path(ref).is_file()
    return predictor, (None if is_file or "@" in str(ref) else str(ref))


EXIT_NOT_STORED = 4  # live: some results could not be stored (disk full, database locked, ...)
EXIT_NOT_JUDGED = 5  # live: some frames could not be scored (recorded as NG with the reason)
LIVE_WARN_EVERY_S = 30.0  # live: a repeated problem of one kind is printed at most this often


def _roi_arg(text: str):
    """argparse type for ``--roi``: four whole numbers x,y,w,h, refused at parse time."""
    from inspector.engine.live import parse_roi

    try:
        return parse_roi(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_live(args: argparse.Namespace) -> int:
    """Exit 0 when every frame was judged and stored; EXIT_NOT_STORED when any result was not
    stored, EXIT_NOT_JUDGED when any frame could not be scored, EXIT_ERROR when the run could
    not go on as set up (e.g. the ROI does not fit in the frames), 130 on Ctrl-C."""
    import signal

    from inspector.data.sources import SourceState, open_source
    from inspector.engine.live import LiveInspector, parse_roi
    from inspector.engine.results_store import ResultsStore

    try:
        roi = parse_roi(args.roi)  # already checked by the parser; kept for callers that build args by hand
    except ValueError as e:
        raise CliError(str(e)) from None
    registry = _registry()
    predictor, follow = _live_model(args.model, args.device, registry)

    def unreadable(path, reason) -> None:
        print(f"skipped unreadable image {path}: {reason}", file=sys.stderr)

    source = open_source(
        args.source, loop=args.loop, realtime=args.realtime, fps=args.fps,
        include_existing=args.include_existing, recursive=args.recursive, on_unreadable=unreadable,
    )
    store = ResultsStore(Path(args.db) if args.db else None, save_ok_every=args.save_ok_every,
                         synchronous="FULL" if args.durable else "NORMAL")

    def on_result(r) -> None:
        if args.json:
            print(json.dumps({
                "event": "result", "id": r.record_id, "stored": r.stored, "time": r.frame.timestamp,
                "source": r.frame.source, "frame": r.frame.frame_id, "name": r.frame.name, "model": r.model_ref,
                "score": _json_number(r.score), "threshold": _json_number(r.threshold), "decision": r.decision,
                "latency_ms": round(r.latency_ms, 2),
            }), flush=True)
        elif r.decision == "NG" or args.verbose:
            label = f" {r.frame.name}" if r.frame.name else ""
            print(f"{r.decision}  {r.score:10.5g} / {r.threshold:<10.5g} frame {r.frame.frame_id}{label}  "
                  f"{r.model_ref}  {r.latency_ms:.0f} ms  {f'#{r.record_id}' if r.stored else 'NOT STORED'}", flush=True)

    def on_state(change) -> None:
        if args.json:
            print(json.dumps({"event": "source", "state": change.state.value, "message": change.message}), flush=True)
            return
        retry = f" (retry {change.attempt} in {change.retry_in_s:.1f} s)" if change.state == SourceState.LOST else ""
        print(f"source {change.state.value}: {change.message}{retry}", file=sys.stderr, flush=True)

    warned: dict[str, list] = {}  # kind -> [when last printed, how many not printed since]

    def on_error(error) -> None:
        """Each kind of problem printed at once, then at most every LIVE_WARN_EVERY_S seconds with
        a count of those not printed: a full disk must not bury the console; the summary counts all."""
        if error.fatal:
            return  # printed once, as the command's error line
        now = time.monotonic()
        seen = warned.get(error.kind)
        if seen is not None and now - seen[0] < LIVE_WARN_EVERY_S:
            seen[1] += 1
            return
        more = seen[1] if seen else 0
        warned[error.kind] = [now, 0]
        if args.json:
            print(json.dumps({"event": "error", "kind": error.kind, "frame": error.frame_id, "message": error.message,
                              "not_shown_before": more}), flush=True)
        else:
            print(f"warning: {error.message}{f' ({more} more like it not shown)' if more else ''}", file=sys.stderr, flush=True)

    live = LiveInspector(source, predictor, store, roi=roi, max_frames=args.max_frames,
                         on_result=on_result, on_state=on_state, on_error=on_error)
    if follow:
        live.follow_registry(registry, follow, device=args.device)

    def stats_line(s) -> str:
        problems = (f", {s.unsaved} NOT STORED" if s.unsaved else "") + (f", {s.unjudged} not judged" if s.unjudged else "")
        return (f"inspected {s.inspected}, NG {s.ng} ({100 * s.ng_rate:.1f} %){problems}, {s.fps:.1f} fps, latency p50 "
                f"{s.latency_p50_ms:.0f} ms p95 {s.latency_p95_ms:.0f} ms, dropped {s.dropped}, model {s.model}, "
                f"source {s.source_state}")

    previous = None
    try:  # SIGTERM (a service manager stopping the line PC's app) stops as cleanly as Ctrl-C
        previous = signal.signal(signal.SIGTERM, lambda *_: live.stop(timeout=0))
    except ValueError:  # not the main thread (called from a test or another program)
        pass
    interrupted = False
    if not args.json:
        print(f"live inspection of {source.description} with {predictor.info.ref}"
              f"{' (following its version in use)' if follow else ''}; results -> {store.path}", file=sys.stderr)
    live.start()
    last = time.monotonic()
    try:
        while not live.finished.wait(0.25):
            if not args.json and args.stats_every and time.monotonic() - last >= args.stats_every:
                last = time.monotonic()
                print(stats_line(live.stats()), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        live.stop()
        store.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    s = live.stats()
    code = (130 if interrupted else EXIT_ERROR if live.fatal is not None else EXIT_NOT_STORED if s.unsaved
            else EXIT_NOT_JUDGED if s.unjudged else 0)
    if args.json:
        print(json.dumps({"event": "summary", "inspected": s.inspected, "ng": s.ng, "ng_rate": s.ng_rate,
                          "unsaved": s.unsaved, "unjudged": s.unjudged, "fatal": s.fatal or None,
                          "fps": s.fps, "latency_p50_ms": s.latency_p50_ms, "latency_p95_ms": s.latency_p95_ms,
                          "dropped": s.dropped, "errors": s.errors, "db": str(store.path), "exit_code": code}), flush=True)
    else:
        print(stats_line(s), file=sys.stderr)
        if s.unjudged:
            print(f"{s.unjudged} frame(s) could not be judged (recorded as NG with the reason where the store allowed)",
                  file=sys.stderr)
        if s.unsaved:
            print(f"{s.unsaved} results NOT stored (latest: {s.store_alarm})", file=sys.stderr)
        print(f"results in {store.path}", file=sys.stderr)
    if live.fatal is not None and not interrupted:
        print(f"error: {live.fatal.message}", file=sys.stderr)
    return code


def _json_number(value: float) -> float | None:
    """A float for JSON output; nan and inf (not valid JSON) become null."""
    return value if math.isfinite(value) else None


def cmd_history(args: argparse.Namespace) -> int:
    from inspector.engine.results_store import ResultsStore, StoreError, default_db_path

    db = Path(args.db) if args.db else default_db_path()
    if not db.is_file():
        raise CliError(f"no results database at {db} (run `inspector live` first, or point --db at one)")
    filters = {"since": args.since, "until": args.until, "decision": args.decision, "model": args.model,
               "source": args.source, "feedback": args.feedback}
    with ResultsStore(db) as store:
        try:
            rows = store.query(limit=args.limit, **filters)
            counts = store.count(**filters)
            exported = store.export_csv(args.csv, **filters) if args.csv else None
        except StoreError as e:
            raise CliError(str(e)) from None
        if args.json:
            _print_json({
                "db": str(db), "counts": counts, "csv": args.csv, "exported": exported,
                "results": [r.to_dict() | {"image": str(store.image_path(r)) if r.image else None,
                                           "score": _json_number(r.score), "threshold": _json_number(r.threshold)}
                            for r in rows],
            })
            return 0
        if rows:
            print(f"{'time':23s} {'id':>7s} {'dec':3s} {'score':>10s} {'threshold':>10s}  {'model':20s} {'frame':>7s}  {'feedback':11s} source")
            for r in rows:
                print(f"{r.when.strftime('%Y-%m-%d %H:%M:%S.%f')[:23]} {r.id:7d} {r.decision:3s} {r.score:10.4g} "
                      f"{r.threshold:10.4g}  {r.model_ref:20s} {r.frame_id:7d}  {(r.feedback or '-'):11s} {r.source}"
                      f"{f'  (not scored: {r.error})' if r.error else ''}")
        rate = 100 * counts["NG"] / counts["total"] if counts["total"] else 0.0
        shown = f"; showing the newest {len(rows)}" if counts["total"] > len(rows) else ""
        print(f"{counts['total']} result(s) match ({counts['NG']} NG, {rate:.1f} %){shown}; database {db}", file=sys.stderr)
        if exported is not None:
            print(f"{exported} row(s) written to {args.csv}", file=sys.stderr)
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    import dataclasses

    from inspector.models import get_method, method_names

    rows = []
    for name in method_names():
        cls = get_method(name)
        defaults = dataclasses.asdict(cls.Config())
        rows.append({"name": name, "description": cls.description, "defaults": defaults | cls.train_defaults})
    if args.json:
        _print_json(rows)
    else:
        for row in rows:
            print(f"{row['name']:22s} {row['description']}")
            print(" " * 23 + ", ".join(f"{k}={v}" for k, v in row["defaults"].items()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo project: the app opens on the ELPV solar cells (data prepared, model trained in the
    background on first start); ``--headless`` does the same without a window and writes the report."""
    if not args.headless:
        from inspector.gui.app import run

        return run(demo={"method": args.method, "epochs": args.epochs}, screenshot=args.screenshot)
    from inspector.data.elpv import materialise_elpv
    from inspector.engine import paths
    from inspector.engine.demo import DEMO_MODEL, DEMO_PARAMS, demo_data_dir
    from inspector.engine.registry import RegistryError

    bar = ProgressBar("preparing ELPV", True)
    data = materialise_elpv(demo_data_dir(), progress=lambda d, t: bar.update(d, t)).root
    bar.close()
    print(f"demo data: {data}", file=sys.stderr)
    try:
        _registry().latest(DEMO_MODEL)
    except RegistryError:
        print(f"training the demo model '{DEMO_MODEL}' (first start only) ...", file=sys.stderr)
        options = ["--epochs", str(args.epochs)] if args.epochs else []
        for key, value in DEMO_PARAMS.get(args.method, {}).items():
            options += ["--param", f"{key}={json.dumps(value)}"]
        rc = main(["train", str(data), "--method", args.method, "--name", DEMO_MODEL, *options])
        if rc:
            return rc
    out = paths.data_dir() / "reports" / DEMO_MODEL
    return main(["eval", DEMO_MODEL, str(data), "--out", str(out)])


def cmd_gui(args: argparse.Namespace) -> int:
    """The desktop app, optionally on a folder and a model."""
    from inspector.gui.app import run

    return run(data=args.data, model=args.model, screenshot=args.screenshot, theme=args.theme)


# --- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from inspector import __version__

    p = _Parser(prog="inspector", description="Visual inspection with GAN anomaly detection.")
    p.add_argument("--version", action="version", version=f"inspector {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="prepare datasets").add_subparsers(dest="dataset", required=True, metavar="DATASET")
    elpv = data.add_parser("elpv", help="materialise the ELPV solar-cell set (elpv-dataset package) as an MVTec layout")
    elpv.add_argument("--out", required=True, help="folder to write")
    elpv.add_argument("--seed", type=int, default=0)
    elpv.add_argument("--json", action="store_true")
    elpv.set_defaults(func=cmd_data_elpv)

    t = sub.add_parser("train", help="train a model on the good images of a dataset folder")
    t.add_argument("data", metavar="DATA_DIR", help="MVTec layout, folder + labels.csv, or a flat folder of good images")
    t.add_argument("--method", default="ganomaly", help="see `inspector methods`")
    t.add_argument("--image-size", type=_number_in(int, 32, 256, power_of_two=True), help="input size in pixels, a power of two 32..256 (method default)")
    t.add_argument("--channels", type=int, choices=(1, 3), help="1 = gray, 3 = RGB (method default)")
    t.add_argument("--epochs", type=_number_in(int, 1, MAX_EPOCHS), help=f"training epochs, 1..{MAX_EPOCHS} (method default)")
    t.add_argument("--batch-size", type=_number_in(int, 1, MAX_BATCH), help=f"training batch size, 1..{MAX_BATCH} (method default)")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    t.add_argument("--name", help="registry name (default: DATASET-METHOD); an existing name gets a new version")
    t.add_argument("--seed", type=_number_in(int, 0, MAX_SEED), default=0)
    t.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="method hyper-parameter (repeatable)")
    t.add_argument("--augment", action="store_true", help="random flips during training")
    t.add_argument("--threshold-mode", default="good-quantile", choices=("good-quantile", "synthetic-f1"))
    t.add_argument("--false-alarm-rate", type=_number_in(float, 0.0, 0.5, low_open=True), default=0.02,
                   help="target false alarms on held-out good images, more than 0 and at most 0.5")
    t.add_argument("--init-from", metavar="MODEL", help="fine-tune from this model (becomes the parent version)")
    t.add_argument("--restart", action="store_true", help="ignore a checkpoint of an interrupted run")
    t.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a model on a dataset's test split")
    e.add_argument("model", metavar="MODEL", help="registry name[@vN] or model file")
    e.add_argument("data", metavar="DATA_DIR")
    e.add_argument("--out", metavar="REPORT_DIR", help="write ROC, histogram, confusion matrix, overlays, scores.csv")
    e.add_argument("--overlays", type=_number_in(int, 0, 10_000), default=24, help="how many overlay images the report gets")
    e.add_argument("--device", default="auto")
    e.add_argument("--seed", type=_number_in(int, 0, MAX_SEED), default=0, help="split seed for folders without a fixed split")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    pr = sub.add_parser("predict", help="score images or folders")
    pr.add_argument("model", metavar="MODEL")
    pr.add_argument("paths", metavar="PATH", nargs="+")
    pr.add_argument("--out", metavar="DIR", help="write overlay PNGs here, mirroring the folders below the paths' "
                                                 "common parent: a/x.png -> DIR/a/x.png_overlay.png")
    pr.add_argument("--csv", metavar="FILE", help="write scores and decisions as CSV")
    pr.add_argument("--opacity", type=_number_in(float, 0.0, 1.0), default=0.5, help="heat map opacity, 0..1")
    pr.add_argument("--recursive", action="store_true")
    pr.add_argument("--batch-size", type=_number_in(int, 1, MAX_BATCH), default=16, help=f"1..{MAX_BATCH}")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--strict", action="store_true", help=f"exit {EXIT_UNREADABLE} when any file was unreadable")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_predict)

    m = sub.add_parser("models", help="the model registry: list | show | activate | delete | rename | export | import")
    m.add_argument("action", choices=("list", "show", "activate", "delete", "rename", "export", "import"),
                   help="activate NAME@vN promotes or rolls back the version in use; import FILE [--name NAME] adds a model file as a new model")
    m.add_argument("model", nargs="?", metavar="MODEL", help="name, name@vN or file")
    m.add_argument("new_name", nargs="?", metavar="NEW_NAME|DEST")
    m.add_argument("--name", help="import: the name to register the file under (default: the name in the file)")
    m.add_argument("--force", action="store_true", help="export: replace an existing destination file")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)

    lv = sub.add_parser("live", help="inspect a camera, stream, video file or watched folder live (headless)",
                        epilog=f"exit codes: 0 every frame judged and stored; {EXIT_NOT_STORED} some results were NOT "
                               f"stored (disk full, database locked, images folder not writable); {EXIT_NOT_JUDGED} some "
                               f"frames could not be scored (stored as NG with the reason); {EXIT_ERROR} an error (e.g. the "
                               f"ROI does not fit in the frames); 130 interrupted")
    lv.add_argument("--source", required=True, metavar="SOURCE", help="camera index (0), stream URL (rtsp://, http://), video file, or a folder to watch for new images")
    lv.add_argument("--model", required=True, metavar="MODEL", help="registry name (follows promote/rollback), name@vN, or model file")
    lv.add_argument("--db", metavar="PATH", help="results database (default: results/results.sqlite in the data folder)")
    lv.add_argument("--max-frames", type=_number_in(int, 1, None), metavar="N", help="stop after N frames (at least 1)")
    lv.add_argument("--roi", type=_roi_arg, metavar="x,y,w,h",
                    help="inspect only this region of each frame: four whole numbers in pixels, x,y >= 0, w,h >= 1; "
                         "it must fit in the frames")
    lv.add_argument("--save-ok-every", type=_number_in(int, 0, None), default=0, metavar="N", help="also keep the image of every N-th OK frame (NG frames are always kept)")
    lv.add_argument("--loop", action="store_true", help="video file: start again at the end")
    lv.add_argument("--realtime", action="store_true", help="video file: play at its frame rate like a camera (frames may be dropped)")
    lv.add_argument("--fps", type=_number_in(float, 0.0, 1000.0, low_open=True), help="video file: play at this rate (implies --realtime)")
    lv.add_argument("--include-existing", action="store_true", help="folder: also inspect the images already there")
    lv.add_argument("--recursive", action="store_true", help="folder: watch sub-folders too")
    lv.add_argument("--durable", action="store_true", help="fsync every result and its image before going on (survives power loss, slower)")
    lv.add_argument("--stats-every", type=_number_in(float, 0.0, None), default=10.0, metavar="S", help="print statistics every S seconds (0 = never)")
    lv.add_argument("--device", default="auto")
    lv.add_argument("--verbose", action="store_true", help="print every result, not only NG ones")
    lv.add_argument("--json", action="store_true", help="one JSON object per line: results, source states, a summary")
    lv.set_defaults(func=cmd_live)

    hi = sub.add_parser("history", help="past inspection results: filter, list, export CSV")
    hi.add_argument("--db", metavar="PATH", help="results database (default: the one `inspector live` writes)")
    hi.add_argument("--decision", type=str.upper, choices=("OK", "NG"))
    hi.add_argument("--model", metavar="NAME[@vN]")
    hi.add_argument("--source", metavar="SOURCE", help="as recorded, e.g. 'camera 0' or 'folder /data/in'")
    hi.add_argument("--feedback", choices=("false_alarm", "confirmed", "any", "none"))
    hi.add_argument("--since", metavar="TIME", help="ISO date/time, 'today', or a span back from now: 30m, 2h, 1d")
    hi.add_argument("--until", metavar="TIME")
    hi.add_argument("--limit", type=_number_in(int, 0, None), default=50, help="rows to list, newest first (default 50, 0 = all; --csv gets all)")
    hi.add_argument("--csv", metavar="FILE", help="export every matching result as CSV (text cells made safe for spreadsheets)")
    hi.add_argument("--json", action="store_true")
    hi.set_defaults(func=cmd_history)

    me = sub.add_parser("methods", help="list the methods with their defaults")
    me.add_argument("--json", action="store_true")
    me.set_defaults(func=cmd_methods)

    d = sub.add_parser("demo", help="open the app on the ELPV demo project (its model is trained on first start)")
    d.add_argument("--method", default=DEMO_METHOD)
    d.add_argument("--epochs", type=int, help="training epochs (method default)")
    d.add_argument("--headless", action="store_true", help="no window: prepare the data, train if needed, write the evaluation report")
    d.add_argument("--screenshot", metavar="PNG", help=argparse.SUPPRESS)
    d.set_defaults(func=cmd_demo, window=True)  # --headless runs `train`/`eval` through main(): threads limited there

    g = sub.add_parser("gui", help="open the desktop app")
    g.add_argument("--data", metavar="DIR", help="open this dataset folder (default: the last one)")
    g.add_argument("--model", metavar="MODEL", help="load this registry name[@vN] or model file (default: the last one)")
    g.add_argument("--theme", choices=("system", "light", "dark"), help="colour theme (default: the saved choice, else the system's)")
    g.add_argument("--screenshot", metavar="PNG", help="save a picture of the window once it has loaded, then quit")
    g.set_defaults(func=cmd_gui, window=True)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a refused argument (already printed)
        return e.code if isinstance(e.code, int) else EXIT_ERROR
    try:
        from inspector.data.images import max_image_pixels

        max_image_pixels()  # a bad INSPECTOR_MAX_IMAGE_PIXELS is refused now, not at the first image
        if not getattr(args, "window", False):  # the app limits threads in its background start-up (torch loads there)
            from inspector.engine.device import limit_threads

            limit_threads()  # before any torch work: oversubscribed threads are ruinous on small machines
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 — one clear line instead of a traceback
        if os.environ.get("INSPECTOR_DEBUG"):
            raise
        message = str(e) or type(e).__name__
        if isinstance(e, KeyError) and e.args:
            message = str(e.args[0])
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
