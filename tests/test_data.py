"""Tests for inspector.data: image I/O, dataset layouts, synthetic defects, ELPV."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.data import (
    DEFECT,
    DEFECT_KINDS,
    GOOD,
    UNKNOWN,
    DatasetError,
    ImageReadError,
    Sample,
    elpv_available,
    list_images,
    load_images,
    make_defect_set,
    materialise_elpv,
    open_dataset,
    paint_defect,
    read_image,
    split_samples,
    write_image,
)

# --- helpers ------------------------------------------------------------------------


def encode_to(path: Path, array: np.ndarray) -> Path:
    """Write raw cv2 (BGR) data with cv2 itself, independent of write_image."""
    ok, buf = cv2.imencode(path.suffix, array)
    assert ok
    path.parent.mkdir(parents=True, exist_ok=True)
    buf.tofile(str(path))
    return path


def textured(size: int = 96, seed: int = 0, rgb: bool = False) -> np.ndarray:
    """A smooth gradient with noise: stands in for a real part surface."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    gray = 40 + 150 * xx / size + 30 * np.sin(yy / 9.0) + rng.normal(0, 6, (size, size))
    gray = np.clip(gray, 0, 255).astype(np.uint8)
    if not rgb:
        return gray
    return np.dstack([gray, (gray * 0.8).astype(np.uint8), 255 - gray])


def make_images(folder: Path, names: list[str], size: int = 16, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i, name in enumerate(names):
        img = rng.integers(0, 256, (size, size + i), dtype=np.uint8)  # distinct file sizes
        paths.append(encode_to(folder / name, img))
    return paths


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",") -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)


# --- reading images --------------------------------------------------------------------


def test_rgb_channel_order_and_lossless_roundtrip(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)  # red
    rgb[1, 1] = (0, 0, 255)  # blue
    for suffix in (".png", ".bmp", ".tif", ".tiff"):
        path = encode_to(tmp_path / f"c{suffix}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        out = read_image(path)
        assert out.dtype == np.uint8 and out.shape == (4, 5, 3)
        np.testing.assert_array_equal(out, rgb)


def test_gray_stays_2d_and_channels_are_forced(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    path = encode_to(tmp_path / "g.png", gray)
    np.testing.assert_array_equal(read_image(path), gray)
    rgb = read_image(path, channels=3)
    assert rgb.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], gray)
    color = encode_to(tmp_path / "c.bmp", np.dstack([gray, gray // 2, gray // 3]))
    forced = read_image(color, channels=1)
    assert forced.shape == (6, 8) and forced.dtype == np.uint8
    with pytest.raises(ValueError):
        read_image(path, channels=2)


def test_jpeg_reads_close_to_original(tmp_path):
    rgb = textured(32, rgb=True)
    path = encode_to(tmp_path / "x.JPG", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = read_image(path)
    assert out.shape == (32, 32, 3)
    assert np.abs(out.astype(int) - rgb).mean() < 8


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_is_scaled_with_rounding(tmp_path, suffix):
    values = np.array([[0, 128, 129, 257 * 100, 65535]], np.uint16)
    out = read_image(encode_to(tmp_path / f"d{suffix}", values))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 0, 1, 100, 255]])
    rgb16 = np.dstack([values, values // 2, np.zeros_like(values)])  # BGR
    out = read_image(encode_to(tmp_path / f"rgb{suffix}", rgb16))
    np.testing.assert_array_equal(out[0, :, 0], 0)  # R channel was zero
    np.testing.assert_array_equal(out[0, :, 2], [0, 0, 1, 100, 255])


def test_rgba_is_composited_on_black(tmp_path):
    bgra = np.zeros((1, 3, 4), np.uint8)
    bgra[0, :, :3] = (10, 20, 200)  # BGR: red-ish
    bgra[0, :, 3] = (0, 255, 128)
    out = read_image(encode_to(tmp_path / "a.png", bgra))
    assert out.shape == (1, 3, 3)
    np.testing.assert_array_equal(out[0, 0], (0, 0, 0))
    np.testing.assert_array_equal(out[0, 1], (200, 20, 10))
    np.testing.assert_allclose(out[0, 2], (100, 10, 5), atol=1)


def test_float_tiff(tmp_path):
    unit = np.array([[0.0, 0.5, 1.0, -0.2]], np.float32)
    np.testing.assert_array_equal(read_image(encode_to(tmp_path / "u.tif", unit)), [[0, 128, 255, 0]])
    big = np.array([[0.0, 50.0, 200.0]], np.float32)
    np.testing.assert_array_equal(read_image(encode_to(tmp_path / "b.tiff", big)), [[0, 64, 255]])


def test_multipage_tiff_reads_first_page(tmp_path):
    first = np.full((5, 5), 10, np.uint8)
    second = np.full((5, 5), 200, np.uint8)
    ok, buf = cv2.imencodemulti(".tiff", [first, second])
    assert ok
    path = tmp_path / "multi.tiff"
    buf.tofile(str(path))
    np.testing.assert_array_equal(read_image(path), first)


def test_unicode_path_roundtrip(tmp_path):
    img = textured(20, rgb=True)
    path = tmp_path / "ordner_ä" / "prüfteil_缺陷.png"
    write_image(path, img)
    assert path.is_file()
    np.testing.assert_array_equal(read_image(path), img)
    assert list_images(path.parent) == [path]


@pytest.mark.parametrize(
    "content, reason",
    [
        (None, "file not found"),
        (b"", "empty file"),
        (np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes(), "not a decodable image"),
        ("truncated", "not a decodable image"),
    ],
)
def test_bad_files_raise_image_read_error(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    if content == "truncated":
        ok, buf = cv2.imencode(".png", textured(40))
        content = buf.tobytes()[: len(buf) // 2]
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert info.value.path == path
    assert reason in info.value.reason
    assert str(info.value) == f"cannot read image '{path}': {info.value.reason}"


def test_write_image_atomic_overwrite_and_formats(tmp_path):
    path = tmp_path / "out.png"
    write_image(path, np.zeros((4, 4), np.uint8))
    write_image(path, np.full((4, 4), 7, np.uint8))
    np.testing.assert_array_equal(read_image(path), 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temp files left
    jpg = tmp_path / "out.jpeg"
    write_image(jpg, textured(16, rgb=True))
    assert jpg.read_bytes()[:2] == b"\xff\xd8"  # JPEG magic
    with pytest.raises(ValueError):
        write_image(tmp_path / "x.gif", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError):
        write_image(tmp_path / "x.png", np.zeros((2, 2), np.float32))


def test_list_images_filters_and_sorts(tmp_path):
    make_images(tmp_path, ["b.PNG", "a.jpg", "c.Tiff", "d.bmp", ".hidden.png"])
    (tmp_path / "notes.txt").write_text("x")
    make_images(tmp_path / "sub", ["e.jpeg"])
    make_images(tmp_path / ".cache", ["f.png"])
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.jpg", "b.PNG", "c.Tiff", "d.bmp"]
    deep = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)]
    assert deep == ["a.jpg", "b.PNG", "c.Tiff", "d.bmp", "sub/e.jpeg"]
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing")


def test_load_images_reports_failures_and_keeps_going(tmp_path):
    good = make_images(tmp_path, ["a.png", "b.png", "c.bmp"], size=20)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    missing = tmp_path / "gone.png"
    paths = [good[0], empty, good[1], corrupt, missing, good[2]]
    images, report = load_images(paths, channels=3, size=8)
    assert report.ok == good
    assert [p for p, _ in report.failed] == [empty, corrupt, missing]
    assert dict(report.failed)[empty] == "empty file"
    assert all(img.shape == (8, 8, 3) and img.dtype == np.uint8 for img in images)
    summary = report.summary()
    assert "3 image(s)" in summary and "3 failed" in summary and "corrupt.png" in summary


# --- datasets ---------------------------------------------------------------------------


def test_mvtec_layout_with_masks(tmp_path):
    root = tmp_path / "bottle"
    make_images(root / "train" / "good", ["000.png", "001.png", "002.png"])
    make_images(root / "test" / "good", ["000.png", "001.png"])
    crack = make_images(root / "test" / "crack", ["000.png", "001.png"])
    make_images(root / "ground_truth" / "crack", ["000_mask.png"])
    ds = open_dataset(root)
    assert (ds.layout, ds.name, ds.root) == ("mvtec", "bottle", root)
    assert ds.counts() == {"train_good": 3, "test_good": 2, "test_defect": 2, "test_unknown": 0}
    assert all(s.label == GOOD and s.defect_type == "good" for s in ds.train)
    defects = {s.path: s for s in ds.test if s.label == DEFECT}
    assert defects[crack[0]].defect_type == "crack"
    assert defects[crack[0]].mask_path == root / "ground_truth" / "crack" / "000_mask.png"
    assert defects[crack[1]].mask_path is None


def test_csv_layout_with_split_column(tmp_path):
    make_images(tmp_path, [f"{i}.png" for i in range(6)])
    write_csv(
        tmp_path / "labels.csv",
        [
            ["path", "label", "split"],
            ["0.png", "good", "train"],
            ["1.png", "OK", "train"],
            ["2.png", "defect", "train"],  # defects never train
            ["3.png", "0", "test"],
            ["4.png", "NG", "test"],
            ["5.png", "", "test"],
        ],
    )
    ds = open_dataset(tmp_path)
    assert ds.layout == "csv"
    assert [s.path.name for s in ds.train] == ["0.png", "1.png"]
    labels = {s.path.name: (s.label, s.defect_type) for s in ds.test}
    assert labels == {
        "2.png": (DEFECT, "defect"),
        "3.png": (GOOD, "good"),
        "4.png": (DEFECT, "defect"),
        "5.png": (UNKNOWN, "unknown"),
    }
    assert ds.counts() == {"train_good": 2, "test_good": 1, "test_defect": 2, "test_unknown": 1}


def test_csv_layout_without_split_is_deterministic(tmp_path):
    names = [f"img{i:02d}.png" for i in range(12)]
    make_images(tmp_path / "imgs", names)
    rows = [["path", "label"]] + [[f"imgs/{n}", "good" if i < 10 else "bad"] for i, n in enumerate(names)]
    write_csv(tmp_path / "labels.csv", rows, delimiter=";")
    ds = open_dataset(tmp_path, seed=3, test_fraction=0.2)
    assert ds.counts() == {"train_good": 8, "test_good": 2, "test_defect": 2, "test_unknown": 0}
    again = open_dataset(tmp_path / "labels.csv", seed=3, test_fraction=0.2)
    assert again.train == ds.train and again.test == ds.test


@pytest.mark.parametrize(
    "rows, message",
    [
        ([["file", "label"], ["a.png", "good"]], "'path' and 'label'"),
        ([["path", "label"], ["a.png", "maybe"]], "line 2"),
        ([["path", "label"], ["a.png", "good"], ["nope.png", "good"]], "file not found"),
        ([["path", "label", "split"], ["a.png", "good", "val"]], "split"),
        ([["path", "label"], ["a.png", "defect"]], "no good images"),
    ],
)
def test_csv_errors_are_clear(tmp_path, rows, message):
    make_images(tmp_path, ["a.png"])
    write_csv(tmp_path / "labels.csv", rows)
    with pytest.raises(DatasetError, match=message):
        open_dataset(tmp_path)


def test_flat_folder_split_is_deterministic(tmp_path):
    make_images(tmp_path, [f"{i:02d}.png" for i in range(20)])
    ds = open_dataset(tmp_path, seed=0)
    assert ds.layout == "folder"
    assert ds.counts() == {"train_good": 16, "test_good": 4, "test_defect": 0, "test_unknown": 0}
    assert open_dataset(tmp_path, seed=0).test == ds.test
    assert open_dataset(tmp_path, seed=1).test != ds.test
    assert {s.path for s in ds.train}.isdisjoint(s.path for s in ds.test)


def test_small_flat_folder_is_all_train(tmp_path):
    make_images(tmp_path, ["a.png", "b.png", "c.png", "d.png"])
    ds = open_dataset(tmp_path)
    assert ds.counts()["train_good"] == 4 and ds.test == []


def test_not_a_dataset(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(DatasetError, match="no images found"):
        open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no such folder"):
        open_dataset(tmp_path / "missing")


def test_split_samples_ignores_input_order():
    samples = [Sample(Path(f"/x/{i:03d}.png"), GOOD, "good") for i in range(50)]
    train, test = split_samples(samples, 0.3, seed=7)
    assert (len(train), len(test)) == (35, 15)
    shuffled = list(reversed(samples))
    assert split_samples(shuffled, 0.3, seed=7) == (train, test)
    assert train == sorted(train, key=lambda s: s.path)
    assert split_samples(samples[:1], 0.9, seed=0) == (samples[:1], [])  # never empties train


def test_fingerprint_tracks_train_files(tmp_path):
    paths = make_images(tmp_path, [f"{i}.png" for i in range(6)])
    first = open_dataset(tmp_path).fingerprint()
    assert len(first) == 16 and int(first, 16) >= 0
    assert open_dataset(tmp_path).fingerprint() == first
    train_file = open_dataset(tmp_path).train[0].path
    with open(train_file, "ab") as fh:
        fh.write(b"\0" * 10)
    assert open_dataset(tmp_path).fingerprint() != first
    assert train_file in paths


# --- synthetic defects --------------------------------------------------------------


@pytest.mark.parametrize("rgb", [False, True], ids=["gray", "rgb"])
@pytest.mark.parametrize("kind", DEFECT_KINDS)
def test_paint_defect_mask_is_exact(kind, rgb):
    image = textured(96, rgb=rgb)
    for seed in range(5):
        out, mask = paint_defect(image, np.random.default_rng(seed), kind)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 255}
        diff = np.abs(out.astype(int) - image.astype(int))
        if rgb:
            diff = diff.max(axis=2)
        inside = mask > 0
        assert np.all(diff[~inside] == 0), "pixels outside the mask changed"
        assert np.all(diff[inside] > 0), "mask covers unchanged pixels"
        assert diff[inside].mean() >= (6 if kind == "hairline" else 15)


def test_hairline_is_thin_and_faint():
    image = np.full((128, 128), 180, np.uint8)
    for seed in range(8):
        out, mask = paint_defect(image, np.random.default_rng(seed), "hairline")
        inside = mask > 0
        darker = 180 - out[inside].astype(int)
        assert 0 < inside.mean() < 0.08, "a hairline covers a small share of the image"
        assert darker.min() > 0 and darker.max() >= 15, "it darkens, and its core visibly"
        assert np.median(darker) < 0.8 * darker.max(), "thinner than a pixel: most pixels change partly"


@pytest.mark.parametrize("kind", [*DEFECT_KINDS, None])
def test_paint_defect_is_deterministic(kind):
    image = textured(64)
    a = paint_defect(image, np.random.default_rng(11), kind)
    b = paint_defect(image, np.random.default_rng(11), kind)
    c = paint_defect(image, np.random.default_rng(12), kind)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_scale_changes_defect_size():
    image = textured(128)
    area = {
        scale: np.mean([(paint_defect(image, np.random.default_rng(s), "blob", scale)[1] > 0).sum() for s in range(8)])
        for scale in (0.5, 2.0)
    }
    assert area[2.0] > 4 * area[0.5]


def test_cutpaste_on_uniform_image_still_gives_visible_defect():
    image = np.full((64, 64), 90, np.uint8)
    out, mask = paint_defect(image, np.random.default_rng(0), "cutpaste")
    inside = mask > 0
    assert inside.any()
    assert np.abs(out.astype(int) - 90)[inside].mean() >= 15
    assert np.all(out[~inside] == 90)


def test_paint_defect_rejects_bad_input():
    with pytest.raises(ValueError):
        paint_defect(textured(32), np.random.default_rng(0), "smudge")
    with pytest.raises(ValueError):
        paint_defect(textured(32).astype(np.float32), np.random.default_rng(0))


def test_make_defect_set():
    images = [textured(64, seed=i) for i in range(3)]
    pairs = make_defect_set(images, 8, seed=5)
    assert len(pairs) == 8
    assert all((m > 0).any() and img.shape == (64, 64) for img, m in pairs)
    again = make_defect_set(images, 8, seed=5)
    assert all(np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0]) for a, b in zip(pairs, again))
    with pytest.raises(ValueError):
        make_defect_set([], 1, seed=0)
    hairlines = make_defect_set(images, 2, seed=5, kinds=("hairline",))
    assert all((m > 0).mean() < 0.1 for _, m in hairlines)


# --- package hygiene -------------------------------------------------------------------


def test_data_package_imports_neither_torch_nor_qt():
    code = (
        "import sys, inspector.data; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'PySide6', 'PyQt5', 'PyQt6')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- ELPV ------------------------------------------------------------------------------


@pytest.mark.elpv
@pytest.mark.skipif(not elpv_available(), reason="elpv-dataset is not installed")
def test_materialise_elpv(tmp_path, monkeypatch):
    out = tmp_path / "elpv"
    calls: list[tuple[int, int]] = []
    ds = materialise_elpv(out, seed=0, progress=lambda done, total: calls.append((done, total)))
    assert ds.layout == "mvtec"
    assert ds.counts() == {"train_good": 1206, "test_good": 302, "test_defect": 821, "test_unknown": 0}
    assert calls[-1] == (2329, 2329) and len(calls) == 2329
    with open(out / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2329
    assert set(rows[0]) == {"path", "label", "probability", "module_type", "split"}
    assert all((out / r["path"]).is_file() for r in rows[:20])
    assert read_image(ds.train[0].path).shape == (300, 300)

    def no_copy(*args, **kwargs):
        raise AssertionError("materialise_elpv copied again")

    monkeypatch.setattr(shutil, "copy2", no_copy)
    start = time.perf_counter()
    again = materialise_elpv(out, seed=0)
    assert time.perf_counter() - start < 2.0
    assert again.counts() == ds.counts() and again.fingerprint() == ds.fingerprint()


@pytest.mark.elpv
@pytest.mark.skipif(not elpv_available(), reason="elpv-dataset is not installed")
def test_materialise_elpv_refuses_foreign_folder(tmp_path):
    (tmp_path / "thesis.txt").write_text("precious")
    with pytest.raises(DatasetError, match="not empty"):
        materialise_elpv(tmp_path)
    assert os.listdir(tmp_path) == ["thesis.txt"]
