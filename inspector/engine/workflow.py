"""The multi-step job the CLI and the GUI share: train a dataset into the registry as a new version.

Lifecycle, so that a kill at any moment loses at most the epoch in progress:

1. the name and every setting are checked before anything is read or written;
2. temp files that killed writes left in the checkpoints folder and the registry's folders are
   removed (``inspector.atomic.remove_stale_temp_files``: only temp names, only in those folders,
   only this run's own or those untouched for ``STALE_TEMP_S``);
3. training writes a checkpoint each epoch, named by the model name and the run's key (settings
   + exact data, ``trainer.run_key``), so a rerun of the same run resumes and another run, even
   with the same name, never takes it over; a lock file held for the run refuses the very same
   run started twice at once;
4. the checkpoint is deleted only after the model is stored in the registry.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from inspector.atomic import remove_stale_temp_files
from inspector.data.datasets import Dataset
from inspector.engine import paths
from inspector.engine.bundle import ModelBundle
from inspector.engine.events import CancelToken
from inspector.engine.modelref import check_name, inside, name_from
from inspector.engine.registry import Entry, ModelRegistry
from inspector.engine.trainer import Event, TrainConfig, Trainer, run_key

CHECKPOINT_SUFFIX = ".ckpt"
STALE_TEMP_S = 15 * 60  # a temp file nobody wrote to for this long belongs to a killed write (a model
# file of hundreds of MB may take long to fsync: a run must never break another run's save)
STALE_CHECKPOINT_S = 7 * 24 * 3600  # checkpoints of abandoned runs (other settings) go after a week


def default_model_name(method: str, dataset: Dataset) -> str:
    """``<dataset>-<method>`` as a valid model name (other characters become '_')."""
    return name_from(f"{dataset.name}-{method}")


def checkpoints_dir() -> Path:
    return paths.cache_dir() / "checkpoints"


def train_dataset(
    dataset: Dataset,
    config: TrainConfig,
    registry: ModelRegistry,
    name: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    cancel: CancelToken | None = None,
    init_from: ModelBundle | None = None,
    resume: bool = True,
) -> Entry:
    """Train on the dataset's good training images and store the result as the next version of ``name``.

    A checkpoint is written each epoch; rerunning the same run (same settings and data) resumes
    from it. ``resume=False`` deletes this run's checkpoint and starts over.
    """
    name = check_name(name or default_model_name(config.method, dataset))
    config.validate()
    image_paths, data_info = _inputs(dataset)
    folder = checkpoints_dir()
    checkpoint = checkpoint_path(name, config, dataset, init_from)
    with run_lock(checkpoint, name):  # this run's checkpoint and its temp files are ours alone from here
        remove_stale_temp_files(folder, STALE_TEMP_S, own_targets=[checkpoint.name])
        for model_folder in _registry_folders(registry):
            remove_stale_temp_files(model_folder, STALE_TEMP_S)
        prune_checkpoints(folder, name, keep=checkpoint)
        if not resume:
            checkpoint.unlink(missing_ok=True)
        trainer = Trainer(config, on_event=on_event, cancel=cancel, checkpoint_path=checkpoint)
        bundle = trainer.fit(image_paths, data_info=data_info, init_from=init_from, keep_checkpoint=True)
        entry = registry.add(bundle, name, parent=init_from.info.ref if init_from else None)
        trainer.remove_checkpoint()  # only now: a kill before this line resumes at the last epoch and saves again
    return entry


def _inputs(dataset: Dataset) -> tuple[list[Path], dict]:
    data_info = {
        "dataset": dataset.name,
        "dataset_root": str(dataset.root),
        "layout": dataset.layout,
        "fingerprint": dataset.fingerprint(),
        "counts": dataset.counts(),
    }
    return [s.path for s in dataset.train], data_info


def checkpoint_path(name: str, config: TrainConfig, dataset: Dataset, init_from: ModelBundle | None = None) -> Path:
    """The checkpoint of training ``dataset`` as ``name`` with ``config``: one file per run key."""
    image_paths, data_info = _inputs(dataset)
    key = run_key(config, image_paths, data_info, init_from)
    return inside(checkpoints_dir(), f"{check_name(name)}-{key}{CHECKPOINT_SUFFIX}")


class TrainingBusy(RuntimeError):
    """The very same run (same name, settings and data) is training in another process or thread."""


@contextlib.contextmanager
def run_lock(checkpoint: Path, name: str) -> Iterator[None]:
    """Hold ``<checkpoint>.lock`` (an OS file lock: a killed holder releases it) for the run, so
    two identical runs never write one checkpoint; the second is refused in one line. Runs with
    other settings or data have other checkpoints and other locks, and train side by side."""
    lock_path = checkpoint.with_name(checkpoint.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+b")
    try:
        if not _try_lock(handle):
            raise TrainingBusy(
                f"'{name}' is being trained with these settings and data in another process right now "
                f"(lock {lock_path}); wait for it to finish, or change the name or settings"
            )
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)  # while still held: a waiting twin was refused, not let in
    finally:
        handle.close()  # closing releases the lock


def _try_lock(handle) -> bool:
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _registry_folders(registry: ModelRegistry) -> list[Path]:
    try:
        return [p for p in registry.root.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def prune_checkpoints(folder: Path, name: str, keep: Path, now: float | None = None) -> list[Path]:
    """Delete checkpoints (and their lock files) of ``name`` from other runs (other settings or
    data) not written to for ``STALE_CHECKPOINT_S``: a running run rewrites its checkpoint every
    epoch. A lock file is only deleted when nobody holds it."""
    pattern = re.compile(r"^%s(-[0-9a-f]{16})?%s(\.lock)?$" % (re.escape(name), re.escape(CHECKPOINT_SUFFIX)))
    now = time.time() if now is None else now
    removed = []
    try:
        candidates = list(Path(folder).iterdir())
    except OSError:
        return removed
    for path in candidates:
        if path.name in (keep.name, keep.name + ".lock") or not pattern.match(path.name):
            continue
        try:
            if path.is_file() and not path.is_symlink() and now - path.stat().st_mtime > STALE_CHECKPOINT_S:
                if path.name.endswith(".lock"):
                    with open(path, "a+b") as handle:
                        if not _try_lock(handle):
                            continue  # its run is going on (an epoch longer than a week)
                        path.unlink()
                else:
                    path.unlink()
                removed.append(path)
        except OSError:
            pass
    return removed
