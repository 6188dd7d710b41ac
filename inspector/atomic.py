"""Atomic file writes: a temp file beside the target, fsync, rename. A half-written file never appears.

THE one temp-file-and-rename helper of the app: every file that must never be seen half-written
(model files, checkpoints, the registry's pointers, result images, CSV exports) goes through
``write_bytes_atomic`` or, for a file written piece by piece, ``open_atomic``.

* The temp name is unique (``.<name>.<random>.tmp``, via ``mkstemp``), so two writers of the
  same target never share a temp file, and a leftover is recognisable (``is_temp_file``).
* ``fsync=True`` (the default) flushes the data to disk before the rename and the folder after
  it: the file survives a power cut once the call returns. ``fsync=False`` keeps the write
  atomic (all or nothing after a crash of the app) but leaves the flush to the OS, for the live
  loop's images when the results store itself does not sync every commit either.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]{8}\.tmp$")  # .<target>.<random>.tmp (mkstemp's names)


def write_bytes_atomic(path: Path | str, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` all or nothing (parents are created)."""
    with open_atomic(path, "wb", fsync=fsync) as f:
        f.write(data)


@contextlib.contextmanager
def open_atomic(path: Path | str, mode: str = "w", fsync: bool = True, **open_kwargs) -> Iterator[IO]:
    """``with open_atomic(path, "w", newline="") as f: ...`` — the target appears (replacing an
    older one) only when the block ends without an exception; otherwise the temp file is removed
    and the target is left as it was."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"open_atomic writes a whole new file: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    created = [] if path.parent.is_dir() else [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(path.parent)
        for folder in created:  # a folder made for this file: its own entry must survive a power cut too
            _fsync_dir(folder.parent)


def is_temp_file(path: Path | str) -> bool:
    """Whether ``path`` is named like a temp file of this module (a leftover of a killed write)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def remove_stale_temp_files(folder: Path | str, older_than_s: float = 2.0, own_targets: Iterable[str] = (),
                            now: float | None = None) -> list[Path]:
    """Delete the temp files that killed writes left in ``folder`` (not below it); returns them.

    Only plain files named like this module's temp files, and only those no running writer can
    own: a temp of one of ``own_targets`` (files only the caller writes, e.g. under a lock), or
    any other not modified for ``older_than_s`` seconds (a write in progress elsewhere is left
    alone: pick the age by how long the folder's largest write may take)."""
    own = set(own_targets)
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not is_temp_file(entry.name):
            continue
        target = _TEMP_NAME.match(entry.name)
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if (target is None or target.group("target") not in own) and now - entry.stat(follow_symlinks=False).st_mtime < older_than_s:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on Windows; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
