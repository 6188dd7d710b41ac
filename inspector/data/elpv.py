"""The ELPV solar-cell images as a ready-made demo dataset.

The `elpv-dataset` package ships 2624 electroluminescence images of solar
cells (300x300 gray PNG) with a defect probability each. We copy them into an
MVTec-style folder so the demo goes through exactly the same code path as a
user's own data. The images are licensed CC BY-NC-SA: they are copied to a
folder the caller chooses, never into this repository.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from .datasets import DEFECT, GOOD, Dataset, DatasetError, Sample, open_dataset, split_samples

_MARKER = ".elpv-complete"
_PARTIAL = ".elpv-partial"  # written first, so a half-done copy can be recognised and redone
_INSTALL_HINT = "the ELPV demo data needs the 'elpv-dataset' package: pip install elpv-dataset"


def _data_dir() -> Path:
    """Folder of the installed package's data (labels.csv + images/)."""
    try:
        data = resources.files("elpv_dataset") / "data"
    except ModuleNotFoundError:
        raise ImportError(_INSTALL_HINT) from None
    path = Path(str(data))
    if not (path / "labels.csv").is_file():
        raise ImportError(f"{_INSTALL_HINT} (installed package has no data at '{path}')")
    return path


def elpv_available() -> bool:
    """Whether the ELPV package and its data files are installed."""
    try:
        _data_dir()
    except ImportError:
        return False
    return True


def _read_labels(data: Path) -> list[tuple[str, str, str]]:
    """(relative path, probability text, module type) rows of the package's labels.csv."""
    rows = []
    for line in (data / "labels.csv").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            rows.append((parts[0], parts[1], parts[2]))
    return rows


def _read_marker(out: Path) -> dict | None:
    try:
        return json.loads((out / _MARKER).read_text())
    except (OSError, ValueError):
        return None


def materialise_elpv(
    out: str | os.PathLike[str],
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Copy ELPV into `out` as an MVTec layout and open it.

    Good = defect probability 0; defect = probability >= 0.5; the uncertain
    0.33 cells are left out. Good cells are split 80/20 (train/test) with
    `seed`; defects all go to test/defect. Also writes `out/labels.csv`
    (path,label,probability,module_type,split) for reference.

    Idempotent: a marker written last records the seed, so calling again with
    the same seed just reopens the folder. A different seed or an interrupted
    copy is redone from scratch. Refuses to write into a non-empty folder
    that is not an earlier materialisation, so it never clobbers user data.
    `progress(done, total)` is called after each copied file.
    """
    out = Path(out).expanduser()
    marker = _read_marker(out)
    if marker is not None and marker.get("seed") == seed:
        return open_dataset(out)

    data = _data_dir()
    if out.exists():
        ours = marker is not None or (out / _PARTIAL).exists()
        if any(out.iterdir()) and not ours:
            raise DatasetError(f"'{out}' is not empty and not an ELPV copy; choose an empty folder")
        for name in ("train", "test"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("labels.csv", _MARKER):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / _PARTIAL).write_text(json.dumps({"seed": seed}))

    info: dict[Path, tuple[str, str]] = {}
    good: list[Sample] = []
    defect: list[Sample] = []
    for rel, prob_text, module in _read_labels(data):
        prob = float(prob_text)
        src = data / rel
        info[src] = (prob_text, module)
        if prob == 0.0:
            good.append(Sample(src, GOOD, "good"))
        elif prob >= 0.5:
            defect.append(Sample(src, DEFECT, "defect"))
    train, test_good = split_samples(good, test_fraction=0.2, seed=seed)
    plan = (
        [(s, "train", "train/good") for s in train]
        + [(s, "test", "test/good") for s in test_good]
        + [(s, "test", "test/defect") for s in sorted(defect, key=lambda s: s.path)]
    )

    for folder in ("train/good", "test/good", "test/defect"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    rows = []
    for done, (sample, split, folder) in enumerate(plan, start=1):
        rel = f"{folder}/{sample.path.name}"
        shutil.copy2(sample.path, out / rel)
        prob_text, module = info[sample.path]
        label = "good" if sample.label == GOOD else "defect"
        rows.append((rel, label, prob_text, module, split))
        if progress is not None:
            progress(done, len(plan))

    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "probability", "module_type", "split"])
        writer.writerows(rows)
    counts = {"train_good": len(train), "test_good": len(test_good), "test_defect": len(defect)}
    (out / _MARKER).write_text(json.dumps({"seed": seed, **counts}))
    (out / _PARTIAL).unlink(missing_ok=True)
    return open_dataset(out)
