"""``inspector predict``: score images or folders, optionally writing overlays and a CSV."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from inspector.cli.common import EXIT_UNREADABLE, MAX_BATCH, CliError, ProgressBar, add_model_arguments, number_in, open_registry, print_json


def register(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("predict", help="score images or folders")
    pr.add_argument("model", metavar="MODEL", help="name, name@vN, model file, or an exported model's folder")
    pr.add_argument("paths", metavar="PATH", nargs="+")
    pr.add_argument("--out", metavar="DIR", help="write overlay PNGs here, mirroring the folders below the paths' "
                                                 "common parent: a/x.png -> DIR/a/x.png_overlay.png")
    pr.add_argument("--csv", metavar="FILE", help="write scores and decisions as CSV")
    pr.add_argument("--opacity", type=number_in(float, 0.0, 1.0), default=0.5, help="heat map opacity, 0..1")
    pr.add_argument("--recursive", action="store_true")
    pr.add_argument("--batch-size", type=number_in(int, 1, MAX_BATCH), default=16, help=f"1..{MAX_BATCH}")
    add_model_arguments(pr)
    pr.add_argument("--strict", action="store_true", help=f"exit {EXIT_UNREADABLE} when any file was unreadable")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_predict)


def overlay_names(files: list[Path], bases: dict[Path, Path], out: Path):
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


def line(row: dict) -> str:
    """One scored file: decision, score, its defect regions (count, largest area), path."""
    regions = f"{row['regions']} region(s), largest {row['largest_area']:.4g} {row['area_unit']}" if row["regions"] else "no region"
    return f"{row['decision']}  {row['score']:10.5g}  {regions:32s}  {row['path']}"


def cmd_predict(args: argparse.Namespace) -> int:
    from inspector.data.images import ImageReadError, list_images, write_image
    from inspector.engine.decision import NG
    from inspector.engine.predictor import Predictor
    from inspector.engine.results_store import write_csv

    predictor = Predictor.open(args.model, device=args.device, registry=open_registry(), runtime=args.runtime)
    rules = predictor.info.rules
    unit = rules.unit if rules is not None else "px"
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
    for f, name in (overlay_names(files, bases, out) if out is not None else []):
        overlays.setdefault(f, []).append(name)
    rows, failed = [], []
    bar = ProgressBar("scoring", not args.json and out is not None)
    scored = predictor.predict_paths(files, batch_size=args.batch_size, progress=lambda p: bar.update(p.done, p.total),
                                     reconstruct=out is not None)
    for path, result in scored:
        if isinstance(result, ImageReadError):
            failed.append({"path": str(path), "reason": result.reason})
            if not args.json:
                print(f"skipped {path}: {result.reason}", file=sys.stderr)
            continue
        regions = result.regions  # found on the heat map at the model's rule level (default 0.6)
        largest = regions[0].area if regions else 0.0
        row = {"path": str(path), "score": result.score, "threshold": result.threshold, "decision": result.decision,
               "regions": len(regions), "largest_area": largest, "area_unit": unit, "rule": result.reason}
        if out is not None:
            overlay = overlays[path].pop(0)
            write_image(overlay, result.overlay(args.opacity))
            row["overlay"] = str(overlay)
        rows.append(row)
        if not args.json and out is None:
            print(line(row))
    bar.close()
    if args.csv:
        write_csv(args.csv, ["path", "score", "threshold", "decision", "error", "regions", "largest_area", "area_unit", "rule"],
                  [[r["path"], r["score"], r["threshold"], r["decision"], "", r["regions"], f"{r['largest_area']:.6g}", unit, r["rule"]]
                   for r in rows]
                  + [[f["path"], "", "", "", f["reason"], "", "", "", ""] for f in failed],
                  text_columns=("path", "error", "area_unit", "rule"))
    ng = sum(r["decision"] == NG for r in rows)
    if args.json:
        print_json({"model": predictor.info.ref, "results": rows, "unreadable": failed})
    else:
        if out is not None:
            for r in rows:
                print(line(r))
        print(f"{len(rows)} scored ({ng} NG), {len(failed)} unreadable", file=sys.stderr)
    if not rows and files:
        raise CliError("none of the images could be read")
    return EXIT_UNREADABLE if failed and args.strict else 0
