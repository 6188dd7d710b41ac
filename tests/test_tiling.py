"""Tiling: a large camera image is scored tile by tile at the model's resolution and its map is
stitched back at full size, so a defect a few pixels wide in a 2,000 px frame is found."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.engine.bundle import ModelBundle
from inspector.engine.predictor import Predictor
from inspector.engine.tiling import MAX_TRAINING_TILES, Tiling, training_tiles
from inspector.engine.trainer import TrainConfig, TrainConfigError, Trainer


FRAME = (1000, 2000)


def surface(seed: int, height: int, width: int) -> np.ndarray:
    """A brushed metal sheet: fine grain along one direction, a slow change of light."""
    rng = np.random.default_rng(seed)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), sigmaX=6, sigmaY=0.8)
    light = np.linspace(-12, 12, width, dtype=np.float32)[None, :]
    return np.clip(128 + 14 * grain / grain.std() + light, 0, 255).astype(np.uint8)


def test_tiles_cover_every_pixel_and_stitch_back_exactly():
    tiling = Tiling(100, 0.25)
    boxes = tiling.boxes(250, 330)
    covered = np.zeros((250, 330), int)
    for y0, x0, y1, x1 in boxes:
        assert (y1 - y0, x1 - x0) == (100, 100)
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1 and boxes[-1][2:] == (250, 330)
    image = np.random.default_rng(0).random((250, 330)).astype(np.float32)
    pieces, boxes = tiling.cut(image)
    assert np.allclose(tiling.stitch(pieces, boxes, 250, 330), image)
    assert Tiling(100).boxes(60, 80) == [(0, 0, 60, 80)]  # smaller than a tile: one tile
    assert len(training_tiles(list(range(MAX_TRAINING_TILES + 10)), seed=0)) == MAX_TRAINING_TILES


def test_the_tiled_threshold_keeps_the_false_alarm_budget_that_a_few_held_out_frames_cannot_show():
    from inspector.engine.threshold import from_good_scores, tiled

    rng = np.random.default_rng(0)
    tiles, budget = 100, 0.02

    def false_alarms(t: float) -> float:  # a frame of 100 tiles scoring Exp(1): P(its highest tile > t)
        return 1 - (1 - np.exp(-t)) ** tiles

    plain_rates, tiled_rates = [], []
    for _ in range(200):  # 200 trainings, each with five held-out frames
        held_out = rng.exponential(1.0, (5, tiles))
        plain = from_good_scores(held_out.max(axis=1), budget)
        raised = tiled(plain, held_out.ravel(), tiles, budget)
        plain_rates.append(false_alarms(plain.value))
        tiled_rates.append(false_alarms(raised.value))
    assert np.mean(plain_rates) > 0.1, "the highest of five frames is no 2 % budget"
    assert 0.01 < np.mean(tiled_rates) < 0.05
    assert tiled(raised, held_out.ravel(), 1, budget) is raised  # one tile per part: nothing to add


@pytest.mark.parametrize("bad", [dict(tile=8), dict(tile=64, tile_overlap=0.9), dict(tile=64, align=True), dict(tile="64")])
def test_bad_tiling_settings_are_one_line(bad):
    with pytest.raises(TrainConfigError, match="tile|align"):
        TrainConfig(method="patchcore", image_size=64, **bad)


@pytest.fixture(scope="module")
def tiled_and_whole(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sheets")
    for i in range(10):  # as a camera gives them: every frame the same size
        cv2.imwrite(str(folder / f"good{i}.png"), surface(i, *FRAME))
    files = sorted(folder.glob("*.png"))
    options = dict(method="patchcore", image_size=64, device="cpu", seed=0)
    return Trainer(TrainConfig(**options, tile=64)).fit(files), Trainer(TrainConfig(**options)).fit(files)


def test_a_small_defect_in_a_2000_px_image_is_found_by_tiles_and_missed_whole(tiled_and_whole, tmp_path):
    tiled, whole = tiled_and_whole
    image = surface(50, *FRAME)
    cv2.line(image, (1400, 500), (1430, 530), 20, 3)  # a scratch 3 px wide and 42 px long
    p = Predictor(tiled, "cpu").predict(image)
    assert p.anomaly_map.shape == FRAME and p.reconstruction.shape == FRAME
    assert p.decision == "NG"
    y, x = np.unravel_index(np.argmax(p.anomaly_map), p.anomaly_map.shape)
    assert abs(x - 1415) <= 40 and abs(y - 515) <= 40, "the stitched map points at the scratch"
    goods = [surface(seed, *FRAME) for seed in (51, 52)]
    assert p.score > 2 * max(q.score for q in Predictor(tiled, "cpu").predict_batch(goods)), "far above any good frame"
    assert all(q.decision == "OK" for q in Predictor(tiled, "cpu").predict_batch(goods)), "clean frames pass the stored threshold"
    assert tiled.info.threshold.params["tile_tail"] == "exponential"
    squashed = Predictor(whole, "cpu")
    assert squashed.predict(image).decision == "OK", "squashed to 64 px, the scratch is gone"
    assert squashed.predict(image).score < max(q.score for q in squashed.predict_batch(goods)), "ranked among the good frames"

    path = tiled.save(tmp_path / "tiled.inspector")
    loaded = ModelBundle.load(path)
    assert loaded.info.tiling == Tiling(64, 0.25) and loaded.info.format_version == 3
    assert Predictor(loaded, "cpu").predict(image).score == pytest.approx(p.score, rel=1e-5)
    assert tiled.info.training["n_tiles"] == MAX_TRAINING_TILES  # 9 frames of 820 tiles, drawn down


def test_cli_train_tile_stores_the_tiling(tmp_home, parts_dir):
    from inspector.cli import main
    from inspector.engine.registry import ModelRegistry

    assert main(["train", str(parts_dir), "--method", "padim", "--image-size", "32", "--tile", "48", "--tile-overlap", "0.5",
                 "--name", "tiled", "--device", "cpu"]) == 0
    info = ModelRegistry().load("tiled").info
    assert info.tiling == Tiling(48, 0.5) and info.format_version == 3
    assert main(["train", str(parts_dir), "--tile", "8", "--name", "bad"]) != 0
