"""The registry of trained models: ``<data dir>/models/<name>/v<N>.inspector``.

Every model file is complete on its own; the registry is only a folder convention, so a
model can be exported by copying its file and imported by ``add``.

The version *in use* of a name (what ``resolve("name")`` gives) is the latest one, unless a
version was pinned with ``set_active`` (promote / roll back): then it is that one, recorded in
``<name>/active``. ``add(..., activate=False)`` stores a candidate (a retrained version awaiting
the operator's verdict) without putting it in use.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from inspector.engine import paths
from inspector.atomic import write_bytes_atomic
from inspector.engine.bundle import MODEL_SUFFIX, ModelBundle, ModelFileError, ModelInfo, read_info

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERSION_FILE = re.compile(r"^v(\d+)" + re.escape(MODEL_SUFFIX) + "$")
ACTIVE_FILE = "active"  # <name>/active holds the pinned version number


class RegistryError(Exception):
    pass


@dataclass
class Entry:
    name: str
    version: int
    path: Path
    info: ModelInfo


class ModelRegistry:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else paths.models_dir()
        self.root.mkdir(parents=True, exist_ok=True)

    # --- reading --------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._version_paths(p.name))

    def versions(self, name: str) -> list[Entry]:
        entries = []
        for version, path in self._version_paths(name):
            try:
                entries.append(Entry(name, version, path, read_info(path)))
            except ModelFileError:
                continue  # an unreadable file is skipped, not fatal; `show` reports it
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
            text = (self.root / name / ACTIVE_FILE).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def list(self) -> list[Entry]:
        """The version in use of every model."""
        return [self.active(n) for n in self.names() if self.versions(n)]

    def resolve(self, ref: str | Path) -> Path:
        """A model file path from ``path``, ``name`` or ``name@vN`` / ``name@N``."""
        candidate = Path(ref)
        if candidate.suffix == MODEL_SUFFIX or candidate.is_file():
            if not candidate.is_file():
                raise RegistryError(f"model file not found: {candidate}")
            return candidate
        name, _, version = str(ref).partition("@")
        if version:
            number = int(version.lstrip("vV")) if version.lstrip("vV").isdigit() else -1
            for v, path in self._version_paths(name):
                if v == number:
                    return path
            raise RegistryError(f"model '{name}' has no version '{version}'")
        return self.active(name).path

    def load(self, ref: str | Path, device="cpu") -> ModelBundle:
        return ModelBundle.load(self.resolve(ref), device)

    # --- writing --------------------------------------------------------------------------
    def add(self, bundle: ModelBundle, name: str, parent: str | None = None, activate: bool = True) -> Entry:
        """Store ``bundle`` as the next version of ``name``; the stored metadata (a copy: the
        caller's bundle is left as it was) gets the name, version and parent.

        With ``activate`` (the default) the new version is the one in use; without it, it is a
        candidate and the version in use stays what it was.
        """
        check_name(name)
        existing = self._version_paths(name)
        if not activate and existing and self.pinned_version(name) is None:
            self.set_active(name, self.active(name).version)  # keep what is in use now
        version = existing[-1][0] + 1 if existing else 1
        info = ModelInfo.from_dict(bundle.info.to_dict())
        info.name, info.version = name, version
        if parent is not None:
            info.parent = parent
        path = self.root / name / f"v{version}{MODEL_SUFFIX}"
        ModelBundle(bundle.model, info).save(path)
        if activate and self.pinned_version(name) is not None:
            self.set_active(name, version)
        return Entry(name, version, path, info)

    def set_active(self, name: str, version: int) -> Entry:
        """Put ``version`` in use (promote a candidate, or roll back to an earlier version)."""
        for entry in self.versions(name):
            if entry.version == version:
                write_bytes_atomic(self.root / name / ACTIVE_FILE, f"{version}\n".encode())
                return entry
        raise RegistryError(f"model '{name}' has no readable version {version}")

    def delete(self, name: str, version: int | None = None) -> int:
        """Delete one version, or the whole model; returns how many files went."""
        paths_ = [p for v, p in self._version_paths(name) if version is None or v == version]
        if not paths_:
            raise RegistryError(f"no model '{name}'" + (f" version {version}" if version else ""))
        for p in paths_:
            p.unlink()
        pinned = self.pinned_version(name)
        if pinned is not None and pinned not in {v for v, _ in self._version_paths(name)}:
            (self.root / name / ACTIVE_FILE).unlink(missing_ok=True)  # back to "the latest is in use"
        if not self._version_paths(name):
            shutil.rmtree(self.root / name, ignore_errors=True)
        return len(paths_)

    def rename(self, old: str, new: str) -> None:
        check_name(new)
        if (self.root / new).exists():
            raise RegistryError(f"a model named '{new}' already exists")
        if not self._version_paths(old):
            raise RegistryError(f"no model named '{old}'")
        (self.root / old).rename(self.root / new)
        for _, path in self._version_paths(new):  # keep the metadata's name in step with the folder
            bundle = ModelBundle.load(path)
            bundle.info.name = new
            bundle.save(path)

    def _version_paths(self, name: str) -> list[tuple[int, Path]]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        found = []
        for p in folder.iterdir():
            m = _VERSION_FILE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise RegistryError(f"invalid model name '{name}': use letters, digits, '.', '_' or '-' (max 64)")
