"""Hostile image files (issue 16): nothing a file contains ends a run, nothing unreadable vanishes.

Real files throughout: a real 3 MB PNG that decodes to 20000×20000 16-bit RGBA, directories and
broken links with image names, FIFOs, a live folder source in its own thread, the CLI with a
trained model, and a few hundred seeded fuzz cases from tests/image_fuzz.py (the generator that
bench/fuzz_images.py runs by the thousand).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.data.add_images import add_good_images
from inspector.data.datasets import open_dataset
from inspector.data.images import (
    DEFAULT_MAX_IMAGE_PIXELS,
    MAX_PIXELS_ENV,
    ImageReadError,
    list_images,
    load_images,
    max_image_pixels,
    read_image,
)
from inspector.data.sources import DISAPPEARED, FolderSource, SourceState, write_video
from tests.conftest import make_part
from tests.image_fuzz import CRAFTED_KINDS, black_png, cases, check, crafted_header, patch_size, seed_files, tiled_tiff

HUGE_MESSAGE = "20000×20000 = 400 MP, over the 100 MP limit (INSPECTOR_MAX_IMAGE_PIXELS)"


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """The issue's file: 3 MB on disk, 20000×20000 16-bit RGBA (3.2 GB) once decoded."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    path.write_bytes(black_png(20000, 20000, bit_depth=16, color_type=6))
    return path


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _good_folder(folder: Path, n: int, rng) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"part_{i:02d}.png"
        cv2.imwrite(str(path), make_part(rng))
        paths.append(path)
    return paths


def _add_hostile_entries(folder: Path, huge_png: Path) -> dict[str, str]:
    """A directory named like an image, a broken link, and the huge PNG; returns name -> expected reason."""
    (folder / "dir.png").mkdir()
    (folder / "dangling.png").symlink_to(folder / "no-such-target.png")
    shutil.copy(huge_png, folder / "huge.png")
    return {"dir.png": "is a directory", "dangling.png": "broken link", "huge.png": HUGE_MESSAGE}


# --- the pixel limit, from the header, before decoding ----------------------------------------


def test_the_3_mb_png_of_400_megapixels_is_refused_from_its_header(huge_png):
    assert 2_000_000 < huge_png.stat().st_size < 4_000_000
    rss_before = _max_rss_mb()
    started = time.perf_counter()
    with pytest.raises(ImageReadError) as info:
        read_image(huge_png)
    assert time.perf_counter() - started < 2.0
    assert _max_rss_mb() - rss_before < 300, "the pixels were allocated: the header was not checked first"
    assert info.value.reason == HUGE_MESSAGE and not info.value.transient
    assert str(info.value) == f"cannot read image '{huge_png}': {HUGE_MESSAGE}"


def test_the_png_builder_makes_real_pngs():
    """The huge file is a real PNG: the same builder's small one decodes to what it claims."""
    image = cv2.imdecode(np.frombuffer(black_png(300, 200), np.uint8), cv2.IMREAD_UNCHANGED)
    assert image.shape == (200, 300, 4) and image.dtype == np.uint16 and not image.any()


def test_the_limit_is_set_by_environment_or_argument(tmp_path, monkeypatch):
    path = tmp_path / "rgba16.png"
    path.write_bytes(black_png(1000, 800))
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    assert max_image_pixels() == DEFAULT_MAX_IMAGE_PIXELS == 100_000_000
    image = read_image(path)
    assert image.shape == (800, 1000, 3) and image.dtype == np.uint8 and not image.any()
    monkeypatch.setenv(MAX_PIXELS_ENV, "500000")
    with pytest.raises(ImageReadError, match=r"1000×800 = 0\.8 MP, over the 0\.5 MP limit \(INSPECTOR_MAX_IMAGE_PIXELS\)"):
        read_image(path)
    assert read_image(path, max_pixels=800_000).shape == (800, 1000, 3)  # the argument wins
    with pytest.raises(ImageReadError, match="over the 0.0001 MP limit"):
        read_image(path, max_pixels=100)
    for bad in ("abc", "0", "-5", "1.5", "nan"):
        monkeypatch.setenv(MAX_PIXELS_ENV, bad)
        with pytest.raises(ValueError, match=f"{MAX_PIXELS_ENV} must be a whole number of pixels >= 1.*{bad}"):
            read_image(path)
    with pytest.raises(ValueError, match="max_pixels"):
        read_image(path, max_pixels=0)


@pytest.mark.parametrize("kind", CRAFTED_KINDS)
def test_crafted_headers_of_every_format_are_refused_before_decoding(tmp_path, kind):
    path = tmp_path / "crafted.img"
    for w, h, message in [(20000, 20000, HUGE_MESSAGE), (65535, 65535, "65535×65535 = 4.29e+03 MP, over the 100 MP limit")]:
        path.write_bytes(crafted_header(kind, w, h))
        with pytest.raises(ImageReadError) as info:
            read_image(path)
        assert message in info.value.reason
    path.write_bytes(crafted_header(kind, 0, 7))
    with pytest.raises(ImageReadError, match="size of 0×7"):
        read_image(path)


def test_a_png_chunk_claiming_gigabytes_is_refused_without_reading_them(tmp_path):
    """A bit flip in an IDAT length made OpenCV allocate and scan 4 GB for a 5 kB file (20 s)."""
    ok, buf = cv2.imencode(".png", np.zeros((20, 30, 4), np.uint16))
    data = bytearray(buf.tobytes())
    idat = data.index(b"IDAT") - 4
    data[idat : idat + 4] = b"\xff\xff\xff\xff"
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    rss_before, started = _max_rss_mb(), time.perf_counter()
    with pytest.raises(ImageReadError, match="runs past the end"):
        read_image(path)
    assert time.perf_counter() - started < 1.0 and _max_rss_mb() - rss_before < 100


def test_a_tiny_tiff_with_a_huge_deflated_tile_is_refused(tmp_path):
    """0.1 MB, 64×64 pixels, one 4096×4096 16-bit RGBA tile: OpenCV would inflate 128 MB for it."""
    path = tmp_path / "bomb.tif"
    path.write_bytes(tiled_tiff(64, 64, 4096))
    rss_before, started = _max_rss_mb(), time.perf_counter()
    with pytest.raises(ImageReadError, match=r"TIFF tiles of 4096×4096 for a 64×64 image"):
        read_image(path)
    assert time.perf_counter() - started < 1.0 and _max_rss_mb() - rss_before < 50
    path.write_bytes(tiled_tiff(64, 64, 256))  # an ordinary tile, larger than a small image, is fine
    assert read_image(path).shape == (64, 64, 3)


def test_a_jpeg_cut_short_or_too_small_for_its_size_is_refused(tmp_path):
    """libjpeg "decodes" a 1 kB JPEG claiming 10000×9999 (4 s, 650 MB of gray); a cut one too."""
    data = dict(seed_files())["jpg-8bit-3ch"]
    path = tmp_path / "x.jpg"
    path.write_bytes(patch_size(data, 10000, 9999))
    with pytest.raises(ImageReadError, match=r"truncated JPEG \(\d+ bytes cannot hold 10000×9999 pixels"):
        read_image(path)
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(ImageReadError, match="no end-of-image marker"):
        read_image(path)
    path.write_bytes(data)
    assert read_image(path).shape == (23, 31, 3)


# --- every per-file failure is an ImageReadError ---------------------------------------------


def test_every_kind_of_bad_entry_is_one_image_read_error(tmp_path):
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading would block without O_NONBLOCK
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_bytes(b"this is not an image at all\n" * 10)
    (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2 << 20))  # 2 MB
    expected = {
        "folder.png": "is a directory",
        "dangling.png": f"broken link (to '{tmp_path / 'nowhere.png'}')",
        "pipe.png": "not a regular file",
        "empty.png": "empty file",
        "text.png": "not a decodable image (corrupt, truncated or unsupported format)",
        "missing.png": "file not found",
    }
    for name, reason in expected.items():
        with pytest.raises(ImageReadError) as info:
            read_image(tmp_path / name)
        assert reason in info.value.reason, name
    with pytest.raises(ImageReadError, match=r"file is 2.1 MB, over the 1.05 MB that the 0.0001 MP limit allows"):
        read_image(tmp_path / "big.png", max_pixels=100)


def test_odd_but_valid_files_still_read(tmp_path):
    """The checks refuse hostile files only: every seed (8/16-bit, float, gray/RGB/RGBA, multi-page) reads."""
    for label, data in seed_files():
        path = tmp_path / "seed.img"
        path.write_bytes(data)
        outcome, detail = check(path)
        assert outcome == "ok", (label, detail)


def test_a_few_hundred_fuzz_cases_end_in_an_array_or_image_read_error(tmp_path):
    """Random, truncated, bit-flipped and overwritten real files and crafted headers (seeded).

    A lower pixel limit keeps the near-limit cases fast; bench/fuzz_images.py runs thousands at
    the default limit in a worker process with a time and memory bound.
    """
    path = tmp_path / "case.img"
    outcomes: dict[str, int] = {}
    started = time.perf_counter()
    for case in cases(400, seed=16, max_pixels=2_000_000):
        path.write_bytes(case.data)
        t = time.perf_counter()
        outcome, detail = check(path, max_pixels=2_000_000)
        assert outcome != "crash", (case.index, case.kind, case.label, detail)
        assert time.perf_counter() - t < 5.0, (case.index, case.label)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("ok", 0) > 20 and outcomes.get("refused", 0) > 200  # both paths exercised
    assert time.perf_counter() - started < 60


# --- listings keep what they cannot read, so it is reported --------------------------------


def test_listing_and_datasets_keep_directories_and_broken_links(tmp_path, huge_png):
    rng = np.random.default_rng(0)
    good = _good_folder(tmp_path, 3, rng)
    expected = _add_hostile_entries(tmp_path, huge_png)
    (tmp_path / "notes.txt").write_text("not an image name: not listed")
    listed = list_images(tmp_path)
    assert [p.name for p in listed] == sorted([p.name for p in good] + list(expected))
    deep = list_images(tmp_path, recursive=True)
    assert "dangling.png" in [p.name for p in deep]  # a folder is walked when recursive, a link listed

    dataset = open_dataset(tmp_path)
    assert sorted(s.path.name for s in dataset.train + dataset.test) == [p.name for p in listed]
    images, report = load_images([s.path for s in dataset.train + dataset.test])
    assert len(images) == 3 and sorted(report.ok) == good
    failed = {p.name: r for p, r in report.failed}
    for name, reason in expected.items():
        assert reason in failed[name]


def test_a_csv_row_naming_a_directory_or_broken_link_says_which(tmp_path):
    from inspector.data.datasets import DatasetError

    _good_folder(tmp_path, 2, np.random.default_rng(0))
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    for name, reason in (("dir.png", "is a directory"), ("dangling.png", "broken link")):
        (tmp_path / "labels.csv").write_text(f"path,label\npart_00.png,good\n{name},good\n")
        with pytest.raises(DatasetError, match=f"line 3: {reason}"):
            open_dataset(tmp_path)


def test_an_mvtec_mask_that_is_a_broken_link_is_reported_not_dropped(tmp_path):
    from inspector.data.datasets import DEFECT

    rng = np.random.default_rng(0)
    _good_folder(tmp_path / "train" / "good", 2, rng)
    _good_folder(tmp_path / "test" / "crack", 1, rng)
    masks = tmp_path / "ground_truth" / "crack"
    masks.mkdir(parents=True)
    (masks / "part_00_mask.png").symlink_to(masks / "nowhere.png")
    sample = open_dataset(tmp_path).test[0]
    assert sample.label == DEFECT and sample.mask_path == masks / "part_00_mask.png"
    with pytest.raises(ImageReadError, match="broken link"):
        read_image(sample.mask_path)


@pytest.fixture(scope="module")
def trained_next_to_hostile_files(tmp_path_factory, huge_png):
    """One small training run on a folder with a directory, a broken link and the huge PNG in it
    (module-wide: the scoring tests below use its model)."""
    from inspector.engine.trainer import TrainConfig, Trainer

    folder = tmp_path_factory.mktemp("train")
    good = _good_folder(folder, 12, np.random.default_rng(1))
    expected = _add_hostile_entries(folder, huge_png)
    events = []
    config = TrainConfig(method="ganomaly", image_size=32, epochs=1, batch_size=8, device="cpu", params={"width": 8, "nz": 16})
    bundle = Trainer(config, on_event=events.append).fit(list_images(folder))
    return bundle, events, good, expected


def test_training_reports_directories_links_and_the_huge_png_and_trains_on_the_rest(trained_next_to_hostile_files):
    from inspector.engine.trainer import ImagesSkipped

    bundle, events, good, expected = trained_next_to_hostile_files
    skipped = [e for e in events if isinstance(e, ImagesSkipped)]
    assert len(skipped) == 1
    failed = {p.name: r for p, r in skipped[0].report.failed}
    assert set(failed) == set(expected)
    for name, reason in expected.items():
        assert reason in failed[name]
    assert sorted(skipped[0].report.ok) == good
    assert {Path(p).name for p, _ in bundle.info.training["skipped"]} == set(expected)


def test_adding_images_rejects_what_cannot_be_read_and_copies_the_rest(tmp_path, huge_png):
    rng = np.random.default_rng(2)
    data = tmp_path / "data"
    _good_folder(data, 3, rng)
    drop = tmp_path / "drop"
    new = _good_folder(drop, 2, rng)
    expected = _add_hostile_entries(drop, huge_png) | {"dir.png": "a folder without images in it"}
    added, rejected = add_good_images(open_dataset(data), [*new, *(drop / n for n in expected)])
    assert sorted(p.name for p in added) == ["part_00_1.png", "part_01_1.png"]
    assert all(read_image(p).shape == (64, 64) for p in added)
    reasons = {p.name: r for p, r in rejected}
    for name, reason in expected.items():
        assert reason in reasons[name]
    assert not [p for p in data.iterdir() if p.name.startswith(".")], "no temp files left"


# --- the watched folder -------------------------------------------------------------------------


def test_the_watched_folder_reports_bad_and_vanished_files_and_keeps_delivering(tmp_path, huge_png):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    unreadable: list[tuple[str, str]] = []
    frames = []
    stop = threading.Event()
    source = FolderSource(inbox, poll_s=0.02, settle_s=0.3, give_up_s=0.5,
                          on_unreadable=lambda p, r: unreadable.append((p.name, r)))

    def watch() -> None:
        for frame in source.frames(stop):
            frames.append(frame)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while source.state != SourceState.LIVE and time.monotonic() < deadline:
            time.sleep(0.01)
        rng = np.random.default_rng(3)
        shutil.copy(huge_png, inbox / "huge.png")
        (inbox / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500))
        (inbox / "dir.png").mkdir()
        (inbox / "dangling.png").symlink_to(inbox / "nowhere.png")
        cv2.imwrite(str(inbox / "vanishing.png"), make_part(rng))
        time.sleep(0.1)  # seen, not yet settled ...
        (inbox / "vanishing.png").unlink()  # ... and gone before it could be read
        cv2.imwrite(str(inbox / "good.png"), make_part(rng))
        deadline = time.monotonic() + 15
        while (len(unreadable) < 5 or not frames) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert thread.is_alive() and source.state == SourceState.LIVE, "the watching went on"
        cv2.imwrite(str(inbox / "after.png"), make_part(rng))  # and still delivers afterwards
        deadline = time.monotonic() + 10
        while len(frames) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)
    assert [f.name for f in frames] == ["good.png", "after.png"]
    reasons = dict(unreadable)
    assert len(unreadable) == len(reasons) == 5, unreadable  # each reported once
    assert reasons["huge.png"] == HUGE_MESSAGE
    assert reasons["vanishing.png"] == DISAPPEARED == "disappeared before it could be read"
    assert "not a decodable image" in reasons["corrupt.png"]
    assert reasons["dir.png"] == "is a directory" and reasons["dangling.png"].startswith("broken link")


def test_write_video_leaves_no_temp_file_whatever_happens(tmp_path):
    frames = [np.full((16, 16), v, np.uint8) for v in (10, 200)]
    path = write_video(tmp_path / "v.avi", frames)
    assert path.is_file()
    with pytest.raises(ValueError, match="all frames must be"):
        write_video(tmp_path / "bad.avi", [np.zeros((16, 16), np.uint8), np.zeros((8, 8), np.uint8)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.avi"]


# --- scoring: one file's failure is reported, the others are scored ------------------------------


@pytest.fixture
def model_file(trained_next_to_hostile_files, tmp_path) -> Path:
    return trained_next_to_hostile_files[0].save(tmp_path / "tiny.inspector")


def test_predict_scores_the_good_images_next_to_the_huge_png(tmp_home, model_file, tmp_path, huge_png, capsys):
    from inspector.cli import main

    folder = tmp_path / "inbox"
    good = _good_folder(folder, 5, np.random.default_rng(4))
    expected = _add_hostile_entries(folder, huge_png)
    assert main(["predict", str(model_file), str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(Path(r["path"]).name for r in out["results"]) == [p.name for p in good]
    assert all(r["decision"] in ("OK", "NG") for r in out["results"])
    reasons = {Path(u["path"]).name: u["reason"] for u in out["unreadable"]}
    assert set(reasons) == set(expected)
    for name, reason in expected.items():
        assert reason in reasons[name]


def test_predict_reports_a_broken_link_named_on_the_command_line(tmp_home, model_file, tmp_path, capsys):
    from inspector.cli import main

    good = _good_folder(tmp_path / "inbox", 2, np.random.default_rng(5))
    link = tmp_path / "gone.png"
    link.symlink_to(tmp_path / "nowhere.png")
    assert main(["predict", str(model_file), *map(str, good), str(link), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["results"]) == 2 and [Path(u["path"]).name for u in out["unreadable"]] == ["gone.png"]
    assert "broken link" in out["unreadable"][0]["reason"]


class _FailsOnLargeImages:
    """A real predictor whose model input step fails for images wider than 100 px, as an
    allocation would on a machine short of memory: the one fault the real thing cannot be made
    to produce on demand."""

    @staticmethod
    def make(bundle):
        from inspector.engine.predictor import Predictor

        class Failing(Predictor):
            def _prepare(self, image):
                if image.shape[1] > 100:
                    raise MemoryError()
                return super()._prepare(image)

        return Failing(bundle, "cpu")


def test_a_scoring_failure_is_reported_and_the_rest_of_the_batch_is_scored(trained_next_to_hostile_files, tmp_path):
    from inspector.data.datasets import Dataset, Sample
    from inspector.engine.evaluate import evaluate
    from inspector.engine.predictor import ScoreError

    rng = np.random.default_rng(5)
    good = _good_folder(tmp_path, 4, rng)
    wide = tmp_path / "wide.png"
    cv2.imwrite(str(wide), np.zeros((64, 200), np.uint8))
    paths = [good[0], good[1], wide, good[2], good[3]]
    predictor = _FailsOnLargeImages.make(trained_next_to_hostile_files[0])
    results = dict(predictor.predict_paths(paths, batch_size=8))
    assert isinstance(results[wide], ScoreError) and isinstance(results[wide], ImageReadError)
    assert "not enough memory to score a 200×64 image" in results[wide].reason
    assert str(results[wide]).startswith(f"cannot score image '{wide}'")
    assert all(np.isfinite(results[p].score) for p in good)

    dataset = Dataset(tmp_path, "t", "folder", [], [Sample(p, 0, "good") for p in paths])
    ev = evaluate(predictor, dataset)
    assert len(ev.rows) == 4 and [p for p, _ in ev.skipped] == [str(wide)]


def test_a_bad_pixel_limit_is_refused_when_a_command_starts(monkeypatch, capsys):
    from inspector.cli import EXIT_ERROR, main

    monkeypatch.setenv("INSPECTOR_MAX_IMAGE_PIXELS", "lots")
    assert main(["methods"]) == EXIT_ERROR
    assert "INSPECTOR_MAX_IMAGE_PIXELS must be a whole number" in capsys.readouterr().err
