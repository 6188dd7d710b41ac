"""``inspector models``: the model registry — list, show, activate, delete, rename, export, import, rules."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from inspector.cli.common import CliError, answer, number_in, open_registry, print_json

_RULE_OPTIONS = ("level", "pixel_size_mm", "ok_below_area", "ng_above_area", "max_regions")


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("models", help="the model registry: list | show | activate | delete | rename | export | import | rules")
    m.add_argument("action", choices=tuple(ACTIONS),
                   help="activate NAME@vN promotes or rolls back the version in use; import FILE [--name NAME] adds a model file as a new model; "
                        "rules MODEL [--level ...] saves a new version with region rules")
    m.add_argument("model", nargs="?", metavar="MODEL", help="name, name@vN or file")
    m.add_argument("new_name", nargs="?", metavar="NEW_NAME|DEST")
    m.add_argument("--name", help="import: the name to register the file under (default: the name in the file)")
    m.add_argument("--force", action="store_true", help="export: replace an existing destination file")
    m.add_argument("--json", action="store_true")
    r = m.add_argument_group("rules", "models rules MODEL: a new version judged also by its defect regions "
                                      "(areas in mm² with --pixel-size-mm, else in pixels); unset options keep the model's rules")
    r.add_argument("--level", type=number_in(float, 0.0, 1.0, low_open=True), help="heat at or above which a pixel is part of a region (default 0.6)")
    r.add_argument("--pixel-size-mm", type=number_in(float, 0.0, None, low_open=True), help="the side of one image pixel on the part, in mm")
    r.add_argument("--ok-below-area", type=number_in(float, 0.0, None, low_open=True),
                   help="a part NG by score whose regions are all smaller than this is OK (a tolerated blemish)")
    r.add_argument("--ng-above-area", type=number_in(float, 0.0, None, low_open=True), help="any region at least this large is NG, whatever the score")
    r.add_argument("--max-regions", type=number_in(int, 0, 999), help="more regions than this is NG")
    r.add_argument("--clear", action="store_true", help="a new version without region rules")
    m.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    registry = open_registry()
    if args.action != "list" and not args.model:
        raise CliError(f"models {args.action} needs a model name")
    return ACTIONS[args.action](registry, args)


def models_list(registry, args: argparse.Namespace) -> int:
    """The version in use of every model, then every file that cannot be read (listed, not fatal)."""
    from inspector.engine.modelref import ref_text

    entries, broken = registry.list(), registry.broken()
    if args.json:
        print_json({
            "models": [entry_summary(e) | {"versions": len(registry.versions(e.name))} for e in entries],
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
        print(f"{ref_text(b.name, b.version):28s} BROKEN  {b.error}")
    return 0


def models_show(registry, args: argparse.Namespace) -> int:
    """A model's metadata; for an exported model's folder also what the export stored (its parity)."""
    from inspector.engine.exported import ExportedModel, is_exported, parity_lines

    exported = ExportedModel.load(args.model) if is_exported(args.model) else None
    if exported is not None:
        path, info = exported.path, exported.info
    else:
        from inspector.engine.bundle import read_info

        path = registry.resolve(args.model)
        info = read_info(path)
    versions = [entry_summary(e) for e in registry.versions(info.name)] if exported is None and info.name in registry.names() else []
    data = {"path": str(path), **info.to_dict(), "versions": versions}
    if exported is not None:
        data["export"] = exported.summary()
    if args.json:
        print_json(data)
    else:
        print(json.dumps(data, indent=2, default=str))
        print(f"region rules: {info.rules.describe() if info.rules is not None else 'none (the score alone decides)'}")
        if exported is not None:
            print(f"exported: {exported.format} {exported.precision} from {exported.export.get('source')}")
            print("\n".join(parity_lines(exported.parity)))
    return 0


def models_rules(registry, args: argparse.Namespace) -> int:
    """A new version of MODEL with region rules: the given options over the model's own rules
    (or the defaults), or without rules (``--clear``)."""
    from inspector.engine.regions import RegionRules

    given = {k: getattr(args, k) for k in _RULE_OPTIONS if getattr(args, k) is not None}
    if args.clear and given:
        raise CliError("models rules: --clear removes the rules; give it alone")
    if not args.clear and not given:
        raise CliError("models rules needs at least one of --level, --pixel-size-mm, --ok-below-area, --ng-above-area, "
                       "--max-regions, or --clear")
    bundle = registry.load(args.model)
    if args.clear:
        rules = None
    else:
        old = bundle.info.rules or RegionRules()
        kept_areas = [k for k in ("ok_below_area", "ng_above_area") if getattr(old, k) is not None and k not in given]
        if "pixel_size_mm" in given and old.pixel_size_mm is None and kept_areas:
            raise CliError(f"models rules: the model's {' and '.join(kept_areas)} are in pixels; give them again in mm² "
                           f"with --pixel-size-mm (--{kept_areas[0].replace('_', '-')} A)")
        try:
            rules = old.replace(**given)
        except ValueError as e:
            raise CliError(f"models rules: {e}") from None
    entry = registry.add_rules_version(bundle, rules)
    text = rules.describe() if rules is not None else "none"
    return answer(args.json, entry_summary(entry) | {"rules": rules.to_dict() if rules else None},
                  f"saved {entry.info.ref} with region rules: {text}")


def models_import(registry, args: argparse.Namespace) -> int:
    entry = registry.import_file(existing_file(args.model), name=args.name)
    return answer(args.json, entry_summary(entry), f"imported {args.model} as {entry.info.ref}")


def models_export(registry, args: argparse.Namespace) -> int:
    if not args.new_name:
        raise CliError("models export needs MODEL DESTINATION")
    dest = registry.export(args.model, args.new_name, overwrite=args.force)
    print(f"exported to {dest}")
    return 0


def models_delete(registry, args: argparse.Namespace) -> int:
    from inspector.engine.modelref import ModelRef

    ref = ModelRef.parse(args.model)
    count = registry.delete(ref.name, ref.version)
    return answer(args.json, {"deleted": count}, f"deleted {count} model file(s) of '{ref.name}'")


def models_activate(registry, args: argparse.Namespace) -> int:
    from inspector.engine.modelref import ModelRef

    ref = ModelRef.parse(args.model)
    if ref.version is None:
        raise CliError("models activate needs NAME@vN, e.g. solar@v2")
    entry = registry.set_active(ref.name, ref.version)
    return answer(args.json, {"name": ref.name, "version": entry.version},
                  f"'{ref.name}' now uses version {entry.version} (live inspection following '{ref.name}' switches to it)")


def models_rename(registry, args: argparse.Namespace) -> int:
    from inspector.engine.modelref import ModelRef

    ref = ModelRef.parse(args.model)
    if not args.new_name:
        raise CliError("models rename needs NAME NEW_NAME")
    if ref.version is not None:
        raise CliError("models rename renames a model with all its versions: give NAME, not NAME@vN")
    registry.rename(ref.name, args.new_name)
    print(f"renamed '{ref.name}' to '{args.new_name}'")
    return 0


ACTIONS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "list": models_list, "show": models_show, "activate": models_activate, "delete": models_delete,
    "rename": models_rename, "export": models_export, "import": models_import, "rules": models_rules,
}


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise CliError(f"no such model file: {path}")
    return path


def entry_summary(e) -> dict[str, Any]:
    """One registry entry as the JSON output shows it."""
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
        "rules": e.info.rules.to_dict() if e.info.rules is not None else None,
    }
