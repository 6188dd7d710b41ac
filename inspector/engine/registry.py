"""The registry of trained models: ``<data dir>/models/<name>/v<N>.inspector``.

Every model file is complete on its own; the registry is only a folder convention, so a
model can be exported by copying its file and imported by ``import_file``. Every name goes
through ``ModelRef``/``check_name`` and every folder through ``inside``, so no name reaches
outside the registry's root.

The version *in use* of a name (what ``resolve("name")`` gives) is the latest one, unless a
version was pinned with ``set_active`` (promote / roll back): then it is that one, recorded in
``<name>/active``. ``add(..., activate=False)`` stores a candidate (a retrained version awaiting
the operator's verdict) without putting it in use.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from inspector.atomic import write_bytes_atomic
from inspector.engine import paths
from inspector.engine.bundle import MODEL_SUFFIX, ModelBundle, ModelFileError, ModelInfo, read_info
from inspector.engine.modelref import ModelRef, ModelRefError, check_name, inside
from inspector.engine.regions import RegionRules
from inspector.engine.threshold import Threshold, ThresholdMode

_VERSION_FILE = re.compile(r"^v(\d+)" + re.escape(MODEL_SUFFIX) + "$")
ACTIVE_FILE = "active"  # <name>/active holds the pinned version number
KEEP = object()  # add_version: keep the bundle's region rules
_CLAIM_TRIES = 1000  # concurrent saves of one name: each try takes the next free number


class RegistryError(Exception):
    pass


@dataclass
class Entry:
    name: str
    version: int
    path: Path
    info: ModelInfo


@dataclass
class BrokenFile:
    """A file in the registry that looks like a model version but cannot be read."""

    name: str
    version: int
    path: Path
    error: str


class ModelRegistry:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else paths.models_dir()
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, name: str) -> Path:
        """``<root>/<name>``: the name is validated and the folder checked to lie inside the root."""
        return inside(self.root, check_name(name))

    # --- reading --------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every valid model name with at least one version file (other folders are ignored)."""
        found = []
        for p in self.root.iterdir():
            try:
                if p.is_dir() and self._version_paths(p.name):
                    found.append(p.name)
            except ModelRefError:
                continue
        return sorted(found)

    def versions(self, name: str) -> list[Entry]:
        """The readable versions of ``name``, oldest first; unreadable files are in ``broken``."""
        return [e for e in self._scan(name) if isinstance(e, Entry)]

    def broken(self, name: str | None = None) -> list[BrokenFile]:
        """Version files that cannot be read (of one name, or of every name)."""
        names = [name] if name is not None else self.names()
        return [e for n in names for e in self._scan(n) if isinstance(e, BrokenFile)]

    def _scan(self, name: str) -> list[Entry | BrokenFile]:
        entries: list[Entry | BrokenFile] = []
        for version, path in self._version_paths(name):
            try:
                entries.append(Entry(name, version, path, read_info(path)))
            except ModelFileError as e:
                entries.append(BrokenFile(name, version, path, str(e)))
        return entries

    def latest(self, name: str) -> Entry:
        versions = self.versions(name)
        if not versions:
            raise RegistryError(f"no model named '{name}' in {self.root}")
        return versions[-1]

    def active(self, name: str) -> Entry:
        """The version in use: the pinned one (promoted / rolled back to), else the latest."""
        pinned = self.pinned_version(name)
        if pinned is not None:
            for entry in self.versions(name):
                if entry.version == pinned:
                    return entry
        return self.latest(name)

    def pinned_version(self, name: str) -> int | None:
        """The version pinned with ``set_active`` (None: the latest is in use)."""
        try:
            text = (self.folder(name) / ACTIVE_FILE).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() and text.isascii() else None

    def list(self) -> list[Entry]:
        """The version in use of every model that has a readable version."""
        return [self.active(n) for n in self.names() if self.versions(n)]

    def resolve(self, ref: str | Path | ModelRef) -> Path:
        """A model file from a path (``*.inspector`` or an existing file), or a registry
        reference ``name`` / ``name@vN``, validated by ``ModelRef``."""
        if not isinstance(ref, ModelRef):
            candidate = Path(ref)
            if candidate.suffix == MODEL_SUFFIX or candidate.is_file():
                if not candidate.is_file():
                    raise RegistryError(f"model file not found: {candidate}")
                return candidate
            ref = ModelRef.parse(str(ref))
        if ref.version is None:
            return self.active(ref.name).path
        for v, path in self._version_paths(ref.name):
            if v == ref.version:
                return path
        raise RegistryError(f"model '{ref.name}' has no version {ref.version}")

    def load(self, ref: str | Path | ModelRef, device="cpu") -> ModelBundle:
        return ModelBundle.load(self.resolve(ref), device)

    # --- writing --------------------------------------------------------------------------
    def add(self, bundle: ModelBundle, name: str, parent: str | None = None, activate: bool = True) -> Entry:
        """Store ``bundle`` as the next version of ``name``; the stored metadata (a copy: the
        caller's bundle is left as it was) gets the name, version and parent.

        With ``activate`` (the default) the new version is the one in use; without it, it is a
        candidate and the version in use stays what it was. The version number is claimed
        atomically, so two saves of one name at the same moment get two versions.
        """
        folder = self.folder(name)
        existing = self._version_paths(name)
        if not activate and existing and self.pinned_version(name) is None:
            self.set_active(name, self.active(name).version)  # keep what is in use now
        info = ModelInfo.from_dict(bundle.info.to_dict())
        info.name = name
        if parent is not None:
            info.parent = parent
        path = self._claim(folder, ModelBundle(bundle.model, info))
        if activate and self.pinned_version(name) is not None:
            self.set_active(name, info.version)
        return Entry(name, info.version, path, info)

    def add_threshold_version(self, bundle: ModelBundle, value: float, stats: dict | None = None,
                              dataset: str | None = None, name: str | None = None) -> Entry:
        """A new version of ``bundle``'s model with a threshold set by hand (``add_version`` with a
        ``manual`` threshold: the one it replaces kept in its params, ``stats`` as measured where
        it was chosen, e.g. on ``dataset``)."""
        old = bundle.info.threshold
        threshold = Threshold(float(value), ThresholdMode.MANUAL.value, {"previous": old.to_dict(), "dataset": dataset}, dict(stats or {}))
        return self.add_version(bundle, threshold=threshold, name=name,
                                notes=f"threshold set by hand (was {old.value:.6g}, {old.method})")

    def add_version(self, bundle: ModelBundle, *, threshold: Threshold | None = None,
                    rules: RegionRules | None | object = KEEP, name: str | None = None, notes: str | None = None) -> Entry:
        """A new version of ``bundle``'s model with another threshold and/or other region rules
        (``rules=None`` removes them; ``KEEP``, the default, keeps the bundle's): the same weights,
        a copy of the metadata, created now, parent = the bundle's version. Stored under ``name``,
        else the bundle's own name; the version it came from is left as it was."""
        old = bundle.info
        target = name or old.name
        if not target:
            raise RegistryError("an unregistered model file needs a name to save a new version under")
        info = ModelInfo.from_dict(old.to_dict())  # a deep copy
        if threshold is not None:
            info.threshold = threshold
        if rules is not KEEP:
            if rules is not None and not isinstance(rules, RegionRules):
                raise TypeError(f"rules must be RegionRules or None, got {type(rules).__name__}")
            info.rules = rules  # type: ignore[assignment]
        info.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if notes is None and rules is not KEEP:
            notes = f"region rules: {rules.describe()}" if isinstance(rules, RegionRules) else "region rules removed"
        info.notes = notes if notes is not None else old.notes
        return self.add(ModelBundle(bundle.model, info), target, parent=old.ref if old.name else None)

    def add_rules_version(self, bundle: ModelBundle, rules: RegionRules | None, name: str | None = None) -> Entry:
        """A new version of ``bundle``'s model with these region rules (None: without rules)."""
        return self.add_version(bundle, rules=rules, name=name)

    def _claim(self, folder: Path, bundle: ModelBundle) -> Path:
        """Write the bundle as ``v<N>`` with the next free N: it is saved under a temp name, then
        hard-linked to its final name, which fails if another save took N first (then N + 1)."""
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".claim-{os.getpid()}-{id(bundle):x}.tmp"
        try:
            for _ in range(_CLAIM_TRIES):
                versions = self._version_paths(folder.name)
                bundle.info.version = versions[-1][0] + 1 if versions else 1
                bundle.save(tmp)
                path = folder / f"v{bundle.info.version}{MODEL_SUFFIX}"
                try:
                    _publish_new(tmp, path)
                except FileExistsError:
                    continue
                return path
        finally:
            tmp.unlink(missing_ok=True)
        raise RegistryError(f"could not claim a version number in {folder} after {_CLAIM_TRIES} tries")

    def taken(self, name: str) -> bool:
        """Whether ``name`` (validated) is used: a model, or any folder of that name in the registry."""
        return self.folder(name).exists()

    def import_file(self, path: Path | str, name: str | None = None) -> Entry:
        """Add a model file as a new model. The name is ``name``, else the one in the file, else
        the file's stem; a name that exists already is refused (an import never adds a version
        to, or changes the version in use of, an existing model)."""
        bundle = ModelBundle.load(path)
        name = name or bundle.info.name or Path(path).stem
        if self.taken(name):
            raise RegistryError(f"a model named '{name}' exists already: import it under another name (--name NEW_NAME)")
        return self.add(bundle, name, parent=bundle.info.parent)

    def export(self, ref: str | Path | ModelRef, dest: Path | str, overwrite: bool = False) -> Path:
        """Copy a model file (atomically) to ``dest``, a file or an existing folder (then named
        ``<name>-v<N>.inspector``); an existing file is replaced only with ``overwrite``."""
        source = self.resolve(ref)
        info = read_info(source)  # a broken file is not exported
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / export_file_name(info, source)
        if dest.exists() and not overwrite:
            raise RegistryError(f"{dest} exists already: choose another destination, or replace it (--force)")
        write_bytes_atomic(dest, source.read_bytes())
        return dest

    def set_active(self, name: str, version: int) -> Entry:
        """Put ``version`` in use (promote a candidate, or roll back to an earlier version)."""
        for entry in self.versions(name):
            if entry.version == version:
                write_bytes_atomic(self.folder(name) / ACTIVE_FILE, f"{version}\n".encode())
                return entry
        raise RegistryError(f"model '{name}' has no readable version {version}")

    def delete(self, name: str, version: int | None = None) -> int:
        """Delete one version, or the whole model; returns how many files went. Only the
        registry's own files are removed: version files, the pin, and the folder once empty."""
        folder = self.folder(name)
        paths_ = [p for v, p in self._version_paths(name) if version is None or v == version]
        if not paths_:
            raise RegistryError(f"no model '{name}'" + (f" version {version}" if version else ""))
        for p in paths_:
            p.unlink()
        pinned = self.pinned_version(name)
        if pinned is not None and pinned not in {v for v, _ in self._version_paths(name)}:
            (folder / ACTIVE_FILE).unlink(missing_ok=True)  # back to "the latest is in use"
        if not self._version_paths(name):
            (folder / ACTIVE_FILE).unlink(missing_ok=True)
            try:
                folder.rmdir()
            except OSError:
                pass  # something else is in there: it stays
        return len(paths_)

    def rename(self, old: str, new: str) -> None:
        source, target = self.folder(old), self.folder(new)
        if target.exists():
            raise RegistryError(f"a model named '{new}' already exists")
        if not self._version_paths(old):
            raise RegistryError(f"no model named '{old}'")
        source.rename(target)
        for _, path in self._version_paths(new):  # keep the metadata's name in step with the folder
            try:
                bundle = ModelBundle.load(path)
            except ModelFileError:
                continue  # a broken file moves with its folder and stays broken
            bundle.info.name = new
            bundle.save(path)

    def _version_paths(self, name: str) -> list[tuple[int, Path]]:
        folder = self.folder(name)
        if not folder.is_dir():
            return []
        found = []
        for p in folder.iterdir():
            m = _VERSION_FILE.match(p.name)
            if m and p.is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)


def export_file_name(info: ModelInfo, source: Path) -> str:
    """The file name an exported model gets: ``<name>-v<N>.inspector`` (the file's stem for an unregistered one)."""
    return f"{info.name or Path(source).stem}-v{info.version}{MODEL_SUFFIX}"


def _publish_new(tmp: Path, path: Path) -> None:
    """Give the complete file ``tmp`` the name ``path`` unless ``path`` exists (FileExistsError).
    A hard link does both in one step; on a file system without them, an exclusive create claims
    the name first."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise
    except OSError:
        pass
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    os.replace(tmp, path)
