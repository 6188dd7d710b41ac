"""Adding images to a dataset's good training set (the app's drag and drop on the data page).

Files are copied, never moved: the user's originals stay where they were. Where they go
depends on the layout ``data.open_dataset`` found: ``train/good/`` of an MVTec folder, the
flat folder itself, or ``added/`` plus a ``labels.csv`` row (label good, split train). Each file
is checked (read) and copied on its own, through the atomic writer; one that cannot be read or
copied is rejected with the reason and the others carry on.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from inspector.atomic import write_bytes_atomic
from inspector.data.datasets import Dataset
from inspector.data.images import IMAGE_EXTENSIONS, ImageReadError, list_images, read_image


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, folders as the images inside them (recursively)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += list_images(path, recursive=True)
        else:
            files.append(path)
    return files


def add_good_images(dataset: Dataset, paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Copy readable images into the good training set; returns (copied to, rejected with reason)."""
    root = dataset.root
    target = {"mvtec": root / "train" / "good", "csv": root / "added"}.get(dataset.layout, root)
    known = {s.path.resolve() for s in dataset.train}
    added: list[Path] = []
    rejected: list[tuple[Path, str]] = []
    candidates: list[Path] = []
    for path in map(Path, paths):
        found = expand([path])
        if path.is_dir() and not found:
            rejected.append((path, "a folder without images in it"))
        candidates += found
    for path in candidates:
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            rejected.append((path, f"not an image file ({path.suffix or 'no extension'})"))
            continue
        if path.resolve() in known:
            rejected.append((path, "already in the good training set"))
            continue
        try:
            read_image(path)
        except ImageReadError as e:
            rejected.append((path, e.reason))
            continue
        try:
            dest = _copy(path, target)
        except OSError as e:  # disk full, permissions, the file went away: this file only
            rejected.append((path, f"cannot copy it: {e.strerror or e}"))
            continue
        added.append(dest)
    if added and dataset.layout == "csv":
        _append_csv_rows(root / "labels.csv", [p.relative_to(root).as_posix() for p in added])
    return added, rejected


def _copy(path: Path, target: Path) -> Path:
    """Copy through the atomic writer, so a crash never leaves half an image in the training set."""
    dest = _free_name(target / path.name)
    write_bytes_atomic(dest, path.read_bytes())
    try:
        shutil.copystat(path, dest)  # keep the original's times, as a copy2 would
    except OSError:
        pass
    return dest


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
        n += 1
    return candidate


def _append_csv_rows(csv_path: Path, rel_paths: list[str]) -> None:
    """Append rows in the file's own delimiter and column order."""
    text = csv_path.read_text(encoding="utf-8-sig")
    first = text.splitlines()[0] if text.strip() else "path,label,split"
    try:
        delimiter = csv.Sniffer().sniff(first, delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    header = [h.strip().lower() for h in first.split(delimiter)]
    values = {"label": "good", "split": "train"}
    with csv_path.open("a", newline="", encoding="utf-8") as f:
        if text and not text.endswith(("\n", "\r")):
            f.write("\n")
        writer = csv.writer(f, delimiter=delimiter)
        for rel in rel_paths:
            writer.writerow([rel if h == "path" else values.get(h, "") for h in header])
