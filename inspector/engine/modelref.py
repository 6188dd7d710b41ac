"""Model names and references (``name``, ``name@vN``), parsed and validated in one place.

Every folder or file the app builds from a model name (registry folders, checkpoints, feedback
pools, results) goes through ``ModelRef`` and ``inside``: a name is a plain file name of at most
64 characters, never a path, so no name can point outside the folder it is joined onto.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

NAME_MAX = 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,%d}$" % (NAME_MAX - 1))
_REF = re.compile(r"^(?P<name>[^@]*)(?:@[vV]?(?P<version>[^@]*))?$")
VERSION_MAX = 10**6


class ModelRefError(ValueError):
    """A model name or reference that is not valid (one line, says what is allowed)."""


@dataclass(frozen=True)
class ModelRef:
    """A model name and optionally one version of it (None: the version in use)."""

    name: str
    version: int | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.version is not None and not (isinstance(self.version, int) and 1 <= self.version <= VERSION_MAX):
            raise ModelRefError(f"invalid version {self.version!r} of '{self.name}': use a whole number 1..{VERSION_MAX}")

    @classmethod
    def parse(cls, text: str) -> "ModelRef":
        """``name``, ``name@vN`` or ``name@N``."""
        m = _REF.match(str(text))
        if m is None:
            raise ModelRefError(f"invalid model reference '{text}': use NAME or NAME@vN")
        version = m.group("version")
        if version is None:
            return cls(m.group("name"))
        if not version.isdigit() or not version.isascii():
            raise ModelRefError(f"invalid model reference '{text}': the version is a number, e.g. {m.group('name') or 'solar'}@v2")
        return cls(m.group("name"), int(version))

    def with_version(self, version: int | None) -> "ModelRef":
        return ModelRef(self.name, version)

    def __str__(self) -> str:
        return ref_text(self.name, self.version)


def ref_text(name: str, version: int | None) -> str:
    """``name@vN``, or ``name`` alone for no version: the one spelling of a reference (``ModelRef.parse``
    reads it back). Unchecked, for names as recorded (a results row, a file's metadata)."""
    return name if version is None else f"{name}@v{version}"


def check_name(name: str) -> str:
    """``name`` if it is a valid model name, else ModelRefError."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        shown = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:60]}… ({len(str(name))} characters)"
        raise ModelRefError(
            f"invalid model name '{shown}': use 1..{NAME_MAX} letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def name_from(text: str, length: int = NAME_MAX) -> str:
    """A valid model name made from any text: other characters become '_', an 'm' goes in front
    of a name that does not start with a letter or digit, and it is cut to ``length``."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    if not name[:1].isascii() or not name[:1].isalnum():
        name = "m" + name
    return name[:length]


def inside(root: Path, *parts: str) -> Path:
    """``root / parts``, refused unless it lies inside ``root`` (after resolving links and ``..``)."""
    root = Path(root)
    path = root.joinpath(*parts)
    base = root.resolve()
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise ModelRefError(f"refused: '{path}' lies outside {root}")
    return path
