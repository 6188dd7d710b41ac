"""``inspector history``: past inspection results — filter, list, export CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inspector.cli.common import CliError, json_number, number_in, print_json


def register(sub: argparse._SubParsersAction) -> None:
    hi = sub.add_parser("history", help="past inspection results: filter, list, export CSV")
    hi.add_argument("--db", metavar="PATH", help="results database (default: the one `inspector live` writes)")
    hi.add_argument("--decision", type=str.upper, choices=("OK", "NG"))
    hi.add_argument("--model", metavar="NAME[@vN]")
    hi.add_argument("--source", metavar="SOURCE", help="as recorded, e.g. 'camera 0' or 'folder /data/in'")
    hi.add_argument("--feedback", choices=("false_alarm", "confirmed", "any", "none"))
    hi.add_argument("--since", metavar="TIME", help="ISO date/time, 'today', or a span back from now: 30m, 2h, 1d")
    hi.add_argument("--until", metavar="TIME")
    hi.add_argument("--limit", type=number_in(int, 0, None), default=50, help="rows to list, newest first (default 50, 0 = all; --csv gets all)")
    hi.add_argument("--csv", metavar="FILE", help="export every matching result as CSV (text cells made safe for spreadsheets)")
    hi.add_argument("--json", action="store_true")
    hi.set_defaults(func=cmd_history)


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
            print_json({
                "db": str(db), "counts": counts, "csv": args.csv, "exported": exported,
                "results": [r.to_dict() | {"image": str(store.image_path(r)) if r.image else None,
                                           "score": json_number(r.score), "threshold": json_number(r.threshold)}
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
