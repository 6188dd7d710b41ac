"""``inspector models``: the model registry — list, show, activate, delete, rename, export, import."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from inspector.cli.common import CliError, answer, open_registry, print_json


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("models", help="the model registry: list | show | activate | delete | rename | export | import")
    m.add_argument("action", choices=tuple(ACTIONS),
                   help="activate NAME@vN promotes or rolls back the version in use; import FILE [--name NAME] adds a model file as a new model")
    m.add_argument("model", nargs="?", metavar="MODEL", help="name, name@vN or file")
    m.add_argument("new_name", nargs="?", metavar="NEW_NAME|DEST")
    m.add_argument("--name", help="import: the name to register the file under (default: the name in the file)")
    m.add_argument("--force", action="store_true", help="export: replace an existing destination file")
    m.add_argument("--json", action="store_true")
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
    from inspector.engine.bundle import read_info

    path = registry.resolve(args.model)
    info = read_info(path)
    versions = [entry_summary(e) for e in registry.versions(info.name)] if info.name in registry.names() else []
    data = {"path": str(path), **info.to_dict(), "versions": versions}
    if args.json:
        print_json(data)
    else:
        print(json.dumps(data, indent=2, default=str))
    return 0


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
    "rename": models_rename, "export": models_export, "import": models_import,
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
    }
