"""``inspector live``: inspect a camera, stream, video file or watched folder headless, storing every result."""

from __future__ import annotations

import argparse
import json
import sys
import time

from inspector.engine.decision import NG
from inspector.cli.common import EXIT_ERROR, EXIT_NOT_JUDGED, EXIT_NOT_STORED, CliError, add_model_arguments, json_number, number_in, open_registry


def register(sub: argparse._SubParsersAction) -> None:
    lv = sub.add_parser("live", help="inspect a camera, stream, video file or watched folder live (headless)",
                        epilog=f"exit codes: 0 every frame judged and stored; {EXIT_NOT_STORED} some results were NOT "
                               f"stored (disk full, database locked, images folder not writable); {EXIT_NOT_JUDGED} some "
                               f"frames could not be scored (stored as NG with the reason); {EXIT_ERROR} an error (e.g. the "
                               f"ROI does not fit in the frames); 130 interrupted")
    lv.add_argument("--source", metavar="SOURCE",
                    help="camera index (0), stream URL (rtsp://, http://), video file, a folder to watch for new images, "
                         "gige:DEVICE[?exposure_us=&gain=&trigger=free|software] (a GigE Vision camera through Aravis), "
                         "or sim:FOLDER (a simulated line: the folder's images fed at --fps parts per second, default 2)")
    lv.add_argument("--model", metavar="MODEL", help="registry name (follows promote/rollback), name@vN, or model file")
    lv.add_argument("--station", metavar="FILE", help="a station file (TOML: name, source, model, roi, trigger, sinks); "
                    "options given here override it")
    lv.add_argument("--db", metavar="PATH", help="results database (default: results/results.sqlite in the data folder)")
    lv.add_argument("--max-frames", type=number_in(int, 1, None), metavar="N", help="stop after N frames (at least 1)")
    lv.add_argument("--roi", type=roi_arg, metavar="x,y,w,h",
                    help="inspect only this region of each frame: four whole numbers in pixels, x,y >= 0, w,h >= 1; "
                         "it must fit in the frames")
    lv.add_argument("--save-ok-every", type=number_in(int, 0, None), default=0, metavar="N",
                    help="also keep the image of every N-th OK frame (NG frames are always kept)")
    lv.add_argument("--loop", action="store_true", help="video file: start again at the end")
    lv.add_argument("--realtime", action="store_true", help="video file: play at its frame rate like a camera (frames may be dropped)")
    lv.add_argument("--fps", type=number_in(float, 0.0, 1000.0, low_open=True),
                    help="video file: play at this rate (implies --realtime); sim:FOLDER: parts per second")
    lv.add_argument("--include-existing", action="store_true", help="folder: also inspect the images already there")
    lv.add_argument("--recursive", action="store_true", help="folder: watch sub-folders too")
    lv.add_argument("--durable", action="store_true", help="fsync every result and its image before going on (survives power loss, slower)")
    lv.add_argument("--stats-every", type=number_in(float, 0.0, None), default=10.0, metavar="S", help="print statistics every S seconds (0 = never)")
    add_model_arguments(lv)
    lv.add_argument("--verbose", action="store_true", help="print every result, not only NG ones")
    lv.add_argument("--json", action="store_true", help="one JSON object per line: results, source states, a summary")
    lv.add_argument("--sink", action="append", default=[], metavar="URL",
                    help="send every verdict to a line output (repeatable): mqtt://HOST:PORT/TOPIC, http://HOST:PORT/PATH, "
                         "http+server://HOST:PORT, opcua://HOST:PORT, modbus://HOST:PORT, opcua+client://…, modbus+client://…, "
                         "digital://sim; see docs/line-outputs/README.md")
    lv.add_argument("--station-name", metavar="NAME", help="the station's name in every verdict message (default: the station "
                    "file's, else 'station')")
    lv.add_argument("--trigger", choices=("free", "line"), default=None,
                    help="free: inspect every frame (default); line: one part per trigger from a line output (PLC)")
    lv.add_argument("--sink-drain", type=number_in(float, 0.0, 3600.0), default=10.0, metavar="S",
                    help="at the end, wait up to S seconds for the line outputs to deliver what is waiting (default 10; "
                         "the rest is delivered at the next start)")
    lv.set_defaults(func=cmd_live)


def roi_arg(text: str):
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

    from inspector.data.sources import SourceState
    from inspector.engine.live import parse_roi
    from inspector.engine.live_controller import ErrorThrottle, LiveController, registry_name
    from inspector.engine.station import Station, StationError

    station = Station()
    if args.station:
        try:
            station = Station.load(args.station)
        except StationError as e:
            raise CliError(str(e)) from None
    args.source = args.source if args.source is not None else station.source
    args.model = args.model if args.model is not None else station.model
    if not args.source or not args.model:
        raise CliError("live needs --source and --model (or a --station file that gives them)")
    args.fps = args.fps if args.fps is not None else station.fps
    trigger = args.trigger or station.trigger
    sinks = station.sinks + args.sink
    name = args.station_name or station.name
    try:
        roi = parse_roi(args.roi if args.roi is not None else station.roi)  # the parser checked --roi already
    except ValueError as e:
        raise CliError(f"{args.station}: {e}" if args.roi is None and args.station else str(e)) from None
    controller = LiveController(open_registry(), store_path=args.db, device=args.device, runtime=args.runtime, save_ok_every=args.save_ok_every,
                                synchronous="FULL" if args.durable else "NORMAL")
    predictor = controller.load(args.model)
    follow = registry_name(args.model)  # a bare name follows promote/rollback made elsewhere

    def unreadable(path, reason) -> None:
        print(f"skipped unreadable image {path}: {reason}", file=sys.stderr)

    source = controller.open_source(
        args.source, loop=args.loop, realtime=args.realtime, fps=args.fps,
        include_existing=args.include_existing, recursive=args.recursive, on_unreadable=unreadable,
    )
    store = controller.open_store()

    def on_result(r) -> None:
        if args.json:
            print(json.dumps({
                "event": "result", "id": r.record_id, "stored": r.stored, "time": r.frame.timestamp,
                "source": r.frame.source, "frame": r.frame.frame_id, "name": r.frame.name, "model": r.model_ref,
                "score": json_number(r.score), "threshold": json_number(r.threshold), "decision": r.decision,
                "latency_ms": round(r.latency_ms, 2),
            }), flush=True)
        elif r.decision == NG or args.verbose:
            label = f" {r.frame.name}" if r.frame.name else ""
            print(f"{r.decision}  {r.score:10.5g} / {r.threshold:<10.5g} frame {r.frame.frame_id}{label}  "
                  f"{r.model_ref}  {r.latency_ms:.0f} ms  {f'#{r.record_id}' if r.stored else 'NOT STORED'}", flush=True)

    def on_state(change) -> None:
        if args.json:
            print(json.dumps({"event": "source", "state": change.state.value, "message": change.message}), flush=True)
            return
        retry = f" (retry {change.attempt} in {change.retry_in_s:.1f} s)" if change.state == SourceState.LOST else ""
        print(f"source {change.state.value}: {change.message}{retry}", file=sys.stderr, flush=True)

    throttle = ErrorThrottle()

    def on_error(error) -> None:
        """Each kind of problem printed at once, then at most every WARN_EVERY_S seconds with a
        count of those not printed: a full disk must not bury the console; the summary counts all."""
        if error.fatal:
            return  # printed once, as the command's error line
        more = throttle.admit(error.kind)
        if more is None:
            return
        if args.json:
            print(json.dumps({"event": "error", "kind": error.kind, "frame": error.frame_id, "message": error.message,
                              "not_shown_before": more}), flush=True)
        else:
            print(f"warning: {error.message}{f' ({more} more like it not shown)' if more else ''}", file=sys.stderr, flush=True)

    def stats_line(s) -> str:
        problems = (f", {s.unsaved} NOT STORED" if s.unsaved else "") + (f", {s.unjudged} not judged" if s.unjudged else "")
        line = (f"inspected {s.inspected}, NG {s.ng} ({100 * s.ng_rate:.1f} %){problems}, {s.fps:.1f} fps, latency p50 "
                f"{s.latency_p50_ms:.0f} ms p95 {s.latency_p95_ms:.0f} ms, dropped {s.dropped}, model {s.model}, "
                f"source {s.source_state}")
        for sink in controller.line_status():
            health = f"DOWN: {sink.last_error}" if sink.down_since is not None else "up"
            line += (f"\n  sink {sink.key}: {health}, delivered {sink.delivered}, backlog {sink.backlog}, "
                     f"latency p50 {sink.latency_p50_ms:.0f} ms p95 {sink.latency_p95_ms:.0f} ms")
        return line

    previous = None
    try:  # SIGTERM (a service manager stopping the line PC's app) stops as cleanly as Ctrl-C
        # the run stops; the line outputs still get --sink-drain seconds below
        previous = signal.signal(signal.SIGTERM, lambda *_: controller.live is not None and controller.live.stop(timeout=0))
    except ValueError:  # not the main thread (called from a test or another program)
        pass
    interrupted = False
    if not args.json:
        print(f"live inspection of {source.description} with {predictor.info.ref}"
              f"{' (following its version in use)' if follow else ''}; results -> {store.path}", file=sys.stderr)
    try:
        live = controller.start(source, predictor, roi, follow=follow, max_frames=args.max_frames,
                                on_result=on_result, on_state=on_state, on_error=on_error, sinks=sinks, station=name,
                                triggered=trigger == "line")
    except ValueError as e:  # a sink that names nothing usable
        controller.close()
        raise CliError(str(e)) from None
    last = time.monotonic()
    sinks_left = []
    try:
        try:
            while not live.finished.wait(0.25):
                if not args.json and args.stats_every and time.monotonic() - last >= args.stats_every:
                    last = time.monotonic()
                    print(stats_line(live.stats()), file=sys.stderr, flush=True)
        except KeyboardInterrupt:  # Ctrl-C stops inspecting; the line outputs still catch up (a second one skips that)
            interrupted = True
            live.stop(timeout=5.0)
        if controller.outputs is not None and not controller.outputs.drain(args.sink_drain):
            sinks_left = [f"{s.key} ({s.backlog + s.unstored_waiting} waiting)" for s in controller.line_status()
                          if s.backlog or s.unstored_waiting]
    except KeyboardInterrupt:
        interrupted = True
    finally:
        controller.close()  # stops the run (the frame being scored is committed first), closes the store
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
        if sinks_left:
            print(f"not yet delivered, sent at the next start: {', '.join(sinks_left)}", file=sys.stderr)
    if live.fatal is not None and not interrupted:
        print(f"error: {live.fatal.message}", file=sys.stderr)
    return code

