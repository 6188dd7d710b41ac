"""Finding labelled images on disk.

A `Dataset` is just lists of file paths with labels, split into `train`
(good parts only: the detectors learn what "good" looks like) and `test`
(good and defective, for thresholds and metrics). Three layouts are
recognised so users can point the app at what they already have:

* MVTec AD: ``train/good``, ``test/<type>``, optional ``ground_truth/<type>/<stem>_mask.png``
* ``labels.csv`` with ``path,label[,split]`` columns
* a flat folder of images, all taken as good

Every entry with an image name is kept, even one that cannot be read (a directory named
``x.png``, a broken link): reading it raises ImageReadError, so training, scoring and the Data
page report it as unreadable rather than it vanishing from the counts. A labels.csv row that
names anything but a file is a DatasetError naming the line and why (the CSV itself is wrong).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .images import list_images

GOOD = 0
DEFECT = 1
UNKNOWN = -1

_LABEL_WORDS = {
    "good": GOOD, "ok": GOOD, "0": GOOD,
    "defect": DEFECT, "ng": DEFECT, "bad": DEFECT, "1": DEFECT,
    "": UNKNOWN, "unknown": UNKNOWN,
}
_DEFECT_TYPE = {GOOD: "good", DEFECT: "defect", UNKNOWN: "unknown"}

# A flat folder with fewer images than this is used for training only.
_MIN_IMAGES_TO_SPLIT = 5


class DatasetError(ValueError):
    """A folder is not a usable dataset; the message says why."""


@dataclass(frozen=True)
class Sample:
    """One image with its label; `mask_path` is the defect mask where one exists."""

    path: Path
    label: int
    defect_type: str
    mask_path: Path | None = None


@dataclass
class Dataset:
    """Train (good only) and test samples found under `root`."""

    root: Path
    name: str
    layout: str  # "mvtec" | "csv" | "folder"
    train: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Sample counts per split and label, for display and sanity checks."""
        return {
            "train_good": len(self.train),
            "test_good": sum(s.label == GOOD for s in self.test),
            "test_defect": sum(s.label == DEFECT for s in self.test),
            "test_unknown": sum(s.label == UNKNOWN for s in self.test),
        }

    def fingerprint(self) -> str:
        """Short hash of the training files (relative paths + sizes).

        Lets a saved model tell whether it was trained on this data without
        reading any image; a changed, added or removed file changes it.
        """
        lines = []
        for s in self.train:
            try:
                rel = s.path.relative_to(self.root).as_posix()
            except ValueError:
                rel = s.path.as_posix()
            try:
                size = s.path.stat().st_size
            except OSError:
                size = -1
            lines.append(f"{rel}\t{size}\n")
        digest = hashlib.sha256("".join(sorted(lines)).encode("utf-8"))
        return digest.hexdigest()[:16]


def split_samples(
    samples: Sequence[Sample], test_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Deterministic (train, test) split: same files + seed -> same split.

    Samples are sorted by path first so the split does not depend on
    directory listing order. round(n * test_fraction) go to test, but at
    least one sample always stays in train. Both lists come back sorted.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), not {test_fraction}")
    ordered = sorted(samples, key=lambda s: s.path)
    n = len(ordered)
    n_test = min(round(n * test_fraction), max(n - 1, 0))
    perm = np.random.default_rng(seed).permutation(n)
    test_idx = set(perm[:n_test].tolist())
    train = [s for i, s in enumerate(ordered) if i not in test_idx]
    test = [s for i, s in enumerate(ordered) if i in test_idx]
    return train, test


def open_dataset(
    path: str | os.PathLike[str], seed: int = 0, test_fraction: float = 0.2
) -> Dataset:
    """Open a dataset folder, detecting its layout (MVTec, labels.csv, flat folder).

    `seed` and `test_fraction` only matter where the files do not say which
    split they belong to. A path to a ``labels.csv`` file opens its folder.
    """
    root = Path(path).expanduser()
    if root.is_file() and root.name.lower() == "labels.csv":
        root = root.parent
    if not root.exists():
        raise DatasetError(f"no such folder: '{root}'")
    if not root.is_dir():
        raise DatasetError(f"not a folder: '{root}'")

    if (root / "train" / "good").is_dir():
        return _open_mvtec(root)
    if (root / "labels.csv").is_file():
        return _open_csv(root, seed, test_fraction)
    images = list_images(root)
    if images:
        return _open_folder(root, images, seed, test_fraction)
    raise DatasetError(
        f"no images found in '{root}' (expected an MVTec layout with train/good/, "
        "a labels.csv, or a folder of images)"
    )


def _open_mvtec(root: Path) -> Dataset:
    train = [Sample(p, GOOD, "good") for p in list_images(root / "train" / "good")]
    if not train:
        raise DatasetError(f"no images found in '{root / 'train' / 'good'}'")
    test: list[Sample] = []
    test_dir = root / "test"
    if test_dir.is_dir():
        for sub in sorted(d for d in test_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            label = GOOD if sub.name == "good" else DEFECT
            for p in list_images(sub):
                mask = root / "ground_truth" / sub.name / f"{p.stem}_mask.png"
                # a mask that is there but unreadable (a broken link, a folder) is kept: reading
                # it reports the problem instead of the sample silently losing its mask
                test.append(Sample(p, label, sub.name, mask if os.path.lexists(mask) else None))
    return Dataset(root, root.name, "mvtec", train, test)


def _parse_label(text: str) -> int | None:
    return _LABEL_WORDS.get(text.strip().lower())


def _read_csv_rows(csv_path: Path) -> list[dict[str, str]]:
    """Rows as dicts with lower-case keys; sniffs ',', ';' or tab (Excel exports vary)."""
    text = csv_path.read_text(encoding="utf-8-sig")
    first_line = text.splitlines()[0] if text.strip() else ""
    try:
        dialect = csv.Sniffer().sniff(first_line, delimiters=",;\t")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    for col in ("path", "label"):
        if col not in header:
            raise DatasetError(f"'{csv_path}' needs a header with 'path' and 'label' columns")
    rows = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        values += [""] * (len(header) - len(values))
        rows.append(dict(zip(header, (v.strip() for v in values))))
    return rows


def _open_csv(root: Path, seed: int, test_fraction: float) -> Dataset:
    csv_path = root / "labels.csv"
    train: list[Sample] = []
    test: list[Sample] = []
    unsplit_good: list[Sample] = []
    for line_no, row in enumerate(_read_csv_rows(csv_path), start=2):
        where = f"{csv_path.name} line {line_no}"
        if not row["path"]:
            raise DatasetError(f"{where}: empty path")
        label = _parse_label(row["label"])
        if label is None:
            raise DatasetError(f"{where}: unknown label {row['label']!r} (use good/ok/0, defect/ng/bad/1 or unknown)")
        file = root / row["path"]
        if not file.is_file():
            raise DatasetError(f"{where}: {_not_a_file(file)}: '{file}'")
        split = row.get("split", "").lower()
        if split not in ("", "train", "test"):
            raise DatasetError(f"{where}: split must be 'train' or 'test', not {row['split']!r}")
        sample = Sample(file, label, _DEFECT_TYPE[label])
        if label != GOOD or split == "test":
            test.append(sample)  # only good images may train
        elif split == "train":
            train.append(sample)
        else:
            unsplit_good.append(sample)
    more_train, more_test = split_samples(unsplit_good, test_fraction, seed)
    train += more_train
    test += more_test
    if not train:
        raise DatasetError(f"'{csv_path}' lists no good images for training")
    return Dataset(root, root.name, "csv", sorted(train, key=_by_path), sorted(test, key=_by_path))


def _not_a_file(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        return "broken link"
    if path.is_dir():
        return "is a directory, not an image file"
    return "file not found" if not path.exists() else "not a regular file"


def _by_path(sample: Sample) -> Path:
    return sample.path


def _open_folder(root: Path, images: list[Path], seed: int, test_fraction: float) -> Dataset:
    samples = [Sample(p, GOOD, "good") for p in images]
    if len(samples) < _MIN_IMAGES_TO_SPLIT:
        train, test = samples, []
    else:
        train, test = split_samples(samples, test_fraction, seed)
    return Dataset(root, root.name, "folder", train, test)
