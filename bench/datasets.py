"""Image sets for the generality benchmark, materialised from installed packages into the MVTec layout.

Every set is made from a package installed in the virtual environment (never copied into the
repository) into ``bench/out/<name>/`` (git-ignored):

    <name>/train/good/*.png                     good parts only
    <name>/test/good/*.png                      held-out good parts
    <name>/test/<kind>/*.png                    defective parts, one folder per defect kind
    <name>/ground_truth/<kind>/<stem>_mask.png  the defect's pixels (0/255), where known
    <name>/validation/...                       the same layout again (test/, ground_truth/) for
                                                choices a script may need to make; the test split
                                                is never looked at for a choice
    <name>/dataset.json                         what the set is: source package, version, licence,
                                                parts, whether the defects are real or synthetic

The sets (``SETS``):

* ``elpv-mono``, ``elpv-poly``: the ELPV solar cells (package ``elpv-dataset``, CC BY-NC-SA 4.0),
  split into two products by module type (monocrystalline, polycrystalline). Real defects
  (defect probability >= 0.5), no masks; good = probability 0, the uncertain cells are left out.
* ``brick``, ``grass``, ``gravel``: scikit-image's bundled photographs (512 px gray, CC0; scikit-image
  is a core dependency, so these are always there). Parts are 64 px tiles; defects are synthetic.
* ``paving``: the herringbone brick paving in the lower part of ``walls-l.png`` from ``mvtb-data``
  (the Machine Vision Toolbox's images, MIT), a 3264 x 2448 colour photograph. Parts are 128 px
  tiles at the photograph's resolution; defects are synthetic. Needs the ``bench`` extra.
* ``stains``: the same paving tiles with colour stains only (``COLOUR_KINDS``: the hue moves, the
  brightness stays), to measure what colour adds: a gray model cannot see them.

Tiles of one photograph are split without sharing a pixel between splits: the photograph is cut
into blocks of two tiles' width, blocks go to train / validation / test by a seeded permutation,
and each block gives 3 x 3 tiles at half a tile's stride (so tiles overlap only within a block,
hence within one split). Every held-out tile is in ``test/good`` and, with one synthetic defect
(``inspector.data.synthetic``, the kinds in turn), in ``test/<kind>``; the masks are the changed
pixels, so pixel AUROC is exact.

    python bench/datasets.py                 # materialise every available set, print counts
    python bench/datasets.py brick elpv-mono --seed 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT_DIR

from inspector.data.synthetic import COLOUR_KINDS

_MARKER = "dataset.json"
_PARTIAL = ".partial"  # written first, so a half-made set is recognised and redone
VALIDATION = "validation"
TRAIN, VAL, TEST = "train", VALIDATION, "test"


@dataclass(frozen=True)
class SetInfo:
    name: str
    package: str  # the distribution the images come from
    licence: str
    what: str  # what the images are
    defects: str  # "real" | "synthetic"
    masks: bool
    available: Callable[[], bool]
    make: Callable[..., dict]  # make(out, seed, limit) -> counts


class DatasetUnavailable(RuntimeError):
    """The package a set comes from is not installed; the message says which."""


# --- helpers -------------------------------------------------------------------------------------


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _write_png(path: Path, image: np.ndarray) -> None:
    from inspector.data import write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, image)


def block_tiles(image: np.ndarray, tile: int, seed: int, fractions: tuple[float, float] = (0.6, 0.15)) -> dict[str, list[np.ndarray]]:
    """Tiles of one photograph per split (train, validation, test), no pixel shared between splits.

    The image is cut into blocks of ``2 * tile`` px; a seeded permutation gives the first
    ``fractions[0]`` of the blocks to train, the next ``fractions[1]`` to validation, the rest to
    test (at least one block each). Each block gives 3 x 3 tiles at a stride of ``tile // 2``.
    """
    block = 2 * tile
    rows, cols = image.shape[0] // block, image.shape[1] // block
    n = rows * cols
    if n < 3:
        raise ValueError(f"a {image.shape[1]}x{image.shape[0]} image has fewer than 3 blocks of {block} px")
    order = np.random.default_rng(seed).permutation(n)
    n_train = max(1, min(n - 2, round(n * fractions[0])))
    n_val = max(1, min(n - n_train - 1, round(n * fractions[1])))
    split_of = {}
    for rank, b in enumerate(order.tolist()):
        split_of[b] = TRAIN if rank < n_train else VAL if rank < n_train + n_val else TEST
    out: dict[str, list[np.ndarray]] = {TRAIN: [], VAL: [], TEST: []}
    step = tile // 2
    for b in range(n):  # blocks in reading order, so tile names follow the photograph
        y0, x0 = (b // cols) * block, (b % cols) * block
        for dy in range(3):
            for dx in range(3):
                y, x = y0 + dy * step, x0 + dx * step
                out[split_of[b]].append(np.ascontiguousarray(image[y : y + tile, x : x + tile]))
    return out


def _write_split(split_root: Path, good: list[np.ndarray], seed: int, prefix: str, kinds: tuple[str, ...] | None = None) -> dict[str, int]:
    """Every held-out tile twice: as it is (``test/good``) and with one synthetic defect, the kinds
    in turn (``test/<kind>``, mask in ``ground_truth/<kind>``), so a good tile and its defective
    twin differ only by the defect. Returns counts per folder."""
    from inspector.data import paint_defect
    from inspector.data.synthetic import VISIBLE_KINDS

    kinds = kinds or VISIBLE_KINDS
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {"good": len(good)}
    for i, tile in enumerate(good):
        stem = f"{prefix}{i:04d}"
        _write_png(split_root / "test" / "good" / f"{stem}.png", tile)
        kind = kinds[i % len(kinds)]
        image, mask = paint_defect(tile, rng, kind)
        _write_png(split_root / "test" / kind / f"{stem}.png", image)
        _write_png(split_root / "ground_truth" / kind / f"{stem}_mask.png", mask)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _texture_set(out: Path, image: np.ndarray, tile: int, seed: int, limit: int | None, kinds: tuple[str, ...] | None = None) -> dict:
    """Tiles of ``image`` as a set with synthetic defects of ``kinds`` (train/good, test, validation)."""
    tiles = block_tiles(image, tile, seed)
    if limit is not None:
        tiles = {k: v[:limit] for k, v in tiles.items()}
    for i, t in enumerate(tiles[TRAIN]):
        _write_png(out / "train" / "good" / f"t{i:04d}.png", t)
    return {
        "train_good": len(tiles[TRAIN]),
        "test": _write_split(out, tiles[TEST], seed + 1, "t", kinds),
        "validation": _write_split(out / VALIDATION, tiles[VAL], seed + 2, "v", kinds),
        "tile_px": tile,
    }


# --- the sets ------------------------------------------------------------------------------------


def _skimage_image(name: str) -> np.ndarray:
    """One of scikit-image's bundled photographs, read from the installed package (no download)."""
    path = Path(str(resources.files("skimage") / "data" / f"{name}.png"))
    if not path.is_file():
        raise DatasetUnavailable(f"scikit-image has no bundled {name}.png at {path}")
    from inspector.data import read_image

    return read_image(path)


def _skimage_available(name: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return (Path(str(resources.files("skimage") / "data")) / f"{name}.png").is_file()
        except ModuleNotFoundError:
            return False

    return check


def _make_skimage(name: str) -> Callable[..., dict]:
    def make(out: Path, seed: int, limit: int | None) -> dict:
        return _texture_set(out, _skimage_image(name), 64, seed, limit)

    return make


_PAVING_ROWS = (1720, 2448)  # walls-l.png: below the wall and the planter, only paving


def _paving_path() -> Path:
    try:
        path = Path(str(resources.files("mvtbdata") / "images" / "walls-l.png"))
    except ModuleNotFoundError:
        raise DatasetUnavailable("the paving set needs the mvtb-data package: pip install -e '.[bench]'") from None
    if not path.is_file():
        raise DatasetUnavailable(f"mvtb-data is installed but has no images/walls-l.png ({path})")
    return path


def _paving_available() -> bool:
    try:
        _paving_path()
    except DatasetUnavailable:
        return False
    return True


def _make_paving(kinds: tuple[str, ...] | None = None) -> Callable[..., dict]:
    def make(out: Path, seed: int, limit: int | None) -> dict:
        from inspector.data import read_image

        image = read_image(_paving_path())
        return _texture_set(out, image[_PAVING_ROWS[0] : _PAVING_ROWS[1]], 128, seed, limit, kinds)

    return make


def _make_elpv(module: str) -> Callable[..., dict]:
    def make(out: Path, seed: int, limit: int | None) -> dict:
        from inspector.data import DEFECT, GOOD, Sample, split_samples
        from inspector.data.elpv import _data_dir, _read_labels

        try:
            data = _data_dir()
        except ImportError as e:
            raise DatasetUnavailable(str(e)) from None
        good, defect = [], []
        for rel, prob_text, kind in _read_labels(data):
            if kind != module:
                continue
            prob = float(prob_text)
            if prob == 0.0:
                good.append(Sample(data / rel, GOOD, "good"))
            elif prob >= 0.5:
                defect.append(Sample(data / rel, DEFECT, "defect"))
        rest, test_good = split_samples(good, test_fraction=0.2, seed=seed)
        train, val_good = split_samples(rest, test_fraction=0.125, seed=seed + 1)  # 70 / 10 / 20 of the good cells
        test_defect, val_defect = split_samples(defect, test_fraction=0.2, seed=seed + 2)
        plan = {
            "train/good": train, "test/good": test_good, "test/defect": test_defect,
            f"{VALIDATION}/test/good": val_good, f"{VALIDATION}/test/defect": val_defect,
        }
        counts = {}
        for folder, samples in plan.items():
            if limit is not None:
                samples = samples[:limit]
            (out / folder).mkdir(parents=True, exist_ok=True)
            for s in samples:
                shutil.copy2(s.path, out / folder / s.path.name)
            counts[folder] = len(samples)
        return {
            "train_good": counts["train/good"],
            "test": {"good": counts["test/good"], "defect": counts["test/defect"]},
            "validation": {"good": counts[f"{VALIDATION}/test/good"], "defect": counts[f"{VALIDATION}/test/defect"]},
        }

    return make


def _elpv_available() -> bool:
    from inspector.data import elpv_available

    return elpv_available()


_ELPV_LICENCE = "CC BY-NC-SA 4.0"
_ELPV_WHAT = "electroluminescence images of {} solar cells, 300 px gray"
_SK_WHAT = "tiles (64 px, 3x3 per 128 px block) of scikit-image's {} photograph (512 px gray)"

SETS: dict[str, SetInfo] = {
    "elpv-mono": SetInfo("elpv-mono", "elpv-dataset", _ELPV_LICENCE, _ELPV_WHAT.format("monocrystalline"), "real", False, _elpv_available, _make_elpv("mono")),
    "elpv-poly": SetInfo("elpv-poly", "elpv-dataset", _ELPV_LICENCE, _ELPV_WHAT.format("polycrystalline"), "real", False, _elpv_available, _make_elpv("poly")),
    "brick": SetInfo("brick", "scikit-image", "CC0 (image); package BSD-3-Clause", _SK_WHAT.format("brick wall"), "synthetic", True,
                     _skimage_available("brick"), _make_skimage("brick")),
    "grass": SetInfo("grass", "scikit-image", "CC0 (image); package BSD-3-Clause", _SK_WHAT.format("grass"), "synthetic", True,
                     _skimage_available("grass"), _make_skimage("grass")),
    "gravel": SetInfo("gravel", "scikit-image", "CC0 (image); package BSD-3-Clause", _SK_WHAT.format("gravel"), "synthetic", True,
                      _skimage_available("gravel"), _make_skimage("gravel")),
    "paving": SetInfo("paving", "mvtb-data", "MIT (package)",
                      "tiles (128 px, 3x3 per 256 px block) of the herringbone brick paving in mvtb-data's walls-l.png (colour photograph)",
                      "synthetic", True, _paving_available, _make_paving()),
    "stains": SetInfo("stains", "mvtb-data", "MIT (package)",
                      "the paving tiles with colour stains only (hue moved, brightness kept): a test of colour",
                      "synthetic", True, _paving_available, _make_paving(COLOUR_KINDS)),
}


def available_sets() -> list[str]:
    return [name for name, info in SETS.items() if info.available()]


def _read_marker(out: Path) -> dict | None:
    try:
        return json.loads((out / _MARKER).read_text())
    except (OSError, ValueError):
        return None


def _made_as(marker: dict | None, want: dict) -> bool:
    """Whether a set's ``dataset.json`` says it was made with these settings."""
    return marker is not None and all(marker.get(k) == v for k, v in want.items())


def materialise(name: str, root: Path = OUT_DIR, seed: int = 0, limit: int | None = None) -> Path:
    """Make set ``name`` under ``root/name`` (MVTec layout) and return its folder.

    Idempotent: ``dataset.json``, written last, records the seed, the limit and the package
    version; the same call again reuses the folder, anything else remakes it. ``limit`` keeps at
    most that many images per folder (for tests). Refuses a non-empty folder it did not make. The
    set is made in a folder of its own beside ``root/name`` and moved in whole, so two benchmarks
    making the same set at once do not remove each other's files.
    """
    if name not in SETS:
        raise KeyError(f"unknown set {name!r}; sets: {', '.join(SETS)}")
    info = SETS[name]
    if not info.available():
        raise DatasetUnavailable(f"set {name} needs the {info.package} package (pip install -e '.[bench]')")
    out = Path(root) / name
    want = {"seed": seed, "limit": limit, "version": _version(info.package), "format": 2}
    marker = _read_marker(out)
    if _made_as(marker, want):
        return out
    if out.exists() and any(out.iterdir()) and marker is None and not (out / _PARTIAL).exists():
        raise RuntimeError(f"'{out}' is not empty and was not made by bench/datasets.py; choose another root")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out.parent))
    try:
        (work / _PARTIAL).write_text(json.dumps(want))
        counts = info.make(work, seed, limit)
        description = {
            "name": name, **want, "package": info.package, "licence": info.licence, "what": info.what,
            "defects": info.defects, "synthetic_defects": info.defects == "synthetic", "masks": info.masks,
            "counts": counts,
        }
        (work / _MARKER).write_text(json.dumps(description, indent=2) + "\n")
        (work / _PARTIAL).unlink()
        if _made_as(_read_marker(out), want):
            return out  # another run made the same set meanwhile
        if out.exists():
            shutil.rmtree(out)  # an older or half-made set of ours (checked above)
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def describe(path: Path) -> dict:
    """The ``dataset.json`` of a materialised set."""
    marker = _read_marker(Path(path))
    if marker is None:
        raise FileNotFoundError(f"no {_MARKER} in '{path}'")
    return marker


def open_validation(path: Path):
    """The validation split of a materialised set as an ``inspector.data.Dataset``: its ``test``
    holds the validation images (MVTec rules: ``validation/test/<kind>``, masks in
    ``validation/ground_truth``), its ``train`` is the set's own train/good."""
    from inspector.data import DEFECT, GOOD, Sample, list_images, open_dataset
    from inspector.data.datasets import Dataset

    path = Path(path)
    root = path / VALIDATION
    samples = []
    for sub in sorted(d for d in (root / "test").iterdir() if d.is_dir()):
        label = GOOD if sub.name == "good" else DEFECT
        for p in list_images(sub):
            mask = root / "ground_truth" / sub.name / f"{p.stem}_mask.png"
            samples.append(Sample(p, label, sub.name, mask if mask.is_file() else None))
    return Dataset(root, f"{path.name}-validation", "mvtec", open_dataset(path).train, samples)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="*", help=f"sets to make (default: every available one of {', '.join(SETS)})")
    parser.add_argument("--seed", type=int, default=0, help="split and defect seed (default 0)")
    parser.add_argument("--root", type=Path, default=OUT_DIR, help="where to make them (default bench/out)")
    args = parser.parse_args(argv)
    names = args.sets or available_sets()
    for name in SETS:
        if not args.sets and name not in names:
            print(f"{name}: not available (needs {SETS[name].package})")
    for name in names:
        path = materialise(name, args.root, args.seed)
        d = describe(path)
        print(f"{name}: {path}  {d['defects']} defects  {json.dumps(d['counts'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
