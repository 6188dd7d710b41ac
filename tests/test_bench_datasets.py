"""bench/datasets.py: the generality benchmark's image sets, made small into a temp folder."""

import dataclasses
import importlib.util
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from inspector.data import DEFECT, GOOD, open_dataset, read_image
from inspector.data.synthetic import VISIBLE_KINDS

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_datasets", ROOT / "bench" / "datasets.py")
bench_datasets = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench_datasets  # its dataclasses look their module up there
_spec.loader.exec_module(bench_datasets)


def _need(name: str) -> None:
    info = bench_datasets.SETS[name]
    if not info.available():
        pytest.skip(f"set {name} needs the {info.package} package (pip install -e '.[bench]')")


def test_texture_set_layout_and_masks_are_real(tmp_path):
    _need("brick")
    path = bench_datasets.materialise("brick", tmp_path, seed=0, limit=6)
    data = open_dataset(path)
    assert data.layout == "mvtec"
    assert len(data.train) == 6 and all(s.label == GOOD for s in data.train)
    good = {s.path.stem: s for s in data.test if s.label == GOOD}
    defects = [s for s in data.test if s.label == DEFECT]
    assert len(good) == 6 and {s.defect_type for s in defects} == set(VISIBLE_KINDS)
    for s in defects:
        assert s.mask_path is not None, s.path
        image, mask = read_image(s.path), read_image(s.mask_path, channels=1)
        twin = read_image(good[s.path.stem].path)  # the same tile without the defect
        assert image.shape == twin.shape == mask.shape == (64, 64)
        assert set(np.unique(mask).tolist()) <= {0, 255} and (mask > 0).sum() >= 4
        changed = np.abs(image.astype(int) - twin.astype(int)) > 0
        assert np.array_equal(changed, mask > 0), f"{s.path.name}: the mask is not the changed pixels"
    info = json.loads((path / "dataset.json").read_text())
    assert info["synthetic_defects"] is True and info["masks"] is True and info["package"] == "scikit-image"
    val = bench_datasets.open_validation(path)
    assert sum(s.label == GOOD for s in val.test) == 6 and all(s.mask_path for s in val.test if s.label == DEFECT)
    assert not {s.path.name for s in val.test} & {s.path.name for s in data.test}  # v0000 vs t0000


def test_materialise_is_idempotent_and_keeps_foreign_folders(tmp_path):
    _need("grass")
    path = bench_datasets.materialise("grass", tmp_path, seed=0, limit=3)
    stamp = (path / "dataset.json").stat().st_mtime_ns
    assert bench_datasets.materialise("grass", tmp_path, seed=0, limit=3) == path
    assert (path / "dataset.json").stat().st_mtime_ns == stamp
    bench_datasets.materialise("grass", tmp_path, seed=1, limit=3)  # another seed: made again
    assert json.loads((path / "dataset.json").read_text())["seed"] == 1
    foreign = tmp_path / "other"
    (foreign / "gravel").mkdir(parents=True)
    (foreign / "gravel" / "keep.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="not made by"):
        bench_datasets.materialise("gravel", foreign, seed=0, limit=3)
    assert (foreign / "gravel" / "keep.txt").read_text() == "mine"


def test_two_runs_making_the_same_set_at_once_write_apart_and_both_get_it_whole(tmp_path, monkeypatch):
    """Each run makes the set in a folder of its own and moves it in whole: neither removes or
    overwrites what the other is writing (here both are held inside ``make`` at once)."""
    _need("grass")
    info = bench_datasets.SETS["grass"]
    together = threading.Barrier(2, timeout=30)
    folders = []

    def make(out, seed, limit):
        folders.append(out)
        together.wait()
        return info.make(out, seed, limit)

    monkeypatch.setitem(bench_datasets.SETS, "grass", dataclasses.replace(info, make=make))
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: bench_datasets.materialise("grass", tmp_path, seed=0, limit=3), range(2)))
    assert len(set(folders)) == 2, "the two runs wrote into the same folder"
    assert paths[0] == paths[1] and bench_datasets.describe(paths[0])["counts"]
    assert [p.name for p in tmp_path.iterdir()] == ["grass"], "no work folder is left behind"


def test_block_tiles_share_no_pixel_between_splits():
    ids = np.arange(512 * 384, dtype=np.int64).reshape(384, 512)  # every pixel its own value
    tiles = bench_datasets.block_tiles(ids, 64, seed=3)
    seen = {split: set(np.concatenate([t.ravel() for t in ts]).tolist()) for split, ts in tiles.items()}
    assert all(seen.values())
    assert not seen["train"] & seen["validation"] and not seen["train"] & seen["test"] and not seen["validation"] & seen["test"]
    assert sum(len(ts) for ts in tiles.values()) == 12 * 9  # 4 x 3 blocks of 128 px, 3 x 3 tiles each
    again = bench_datasets.block_tiles(ids, 64, seed=3)
    assert all(np.array_equal(a, b) for split in tiles for a, b in zip(tiles[split], again[split]))


def test_elpv_split_by_module_type(tmp_path):
    _need("elpv-mono")
    from inspector.data.elpv import _data_dir, _read_labels

    module_of = {Path(rel).name: module for rel, _, module in _read_labels(_data_dir())}
    path = bench_datasets.materialise("elpv-mono", tmp_path, seed=0, limit=4)
    data = open_dataset(path)
    files = [s.path for s in data.train + data.test]
    assert len(data.train) == 4 and sum(s.label == DEFECT for s in data.test) == 4
    assert {module_of[p.name] for p in files} == {"mono"}
    assert json.loads((path / "dataset.json").read_text())["defects"] == "real"


def test_paving_set(tmp_path):
    _need("paving")
    data = open_dataset(bench_datasets.materialise("paving", tmp_path, seed=0, limit=2))
    assert len(data.train) == 2
    assert read_image(data.train[0].path).shape == (128, 128, 3)
    assert all(s.mask_path is not None for s in data.test if s.label == DEFECT)
