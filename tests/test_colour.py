"""Colour end to end: an RGB model trains, scores, maps and overlays in colour, and finds a stain
(hue moved, brightness kept) that the same method in gray cannot see."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.data import paint_defect
from inspector.engine.predictor import Predictor
from inspector.engine.trainer import TrainConfig, Trainer


def painted_part(seed: int) -> np.ndarray:
    """A red-brown painted sheet: grain in brightness, the same hue everywhere."""
    rng = np.random.default_rng(seed)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (64, 64)).astype(np.float32), (0, 0), 1.5)
    base = np.array([170, 95, 80], np.float32)
    return np.clip(base * (1 + 0.12 * grain / grain.std())[..., None], 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def colour_and_gray(tmp_path_factory):
    folder = tmp_path_factory.mktemp("painted")
    for i in range(30):
        cv2.imwrite(str(folder / f"{i:02d}.png"), cv2.cvtColor(painted_part(i), cv2.COLOR_RGB2BGR))
    files = sorted(folder.glob("*.png"))
    options = dict(method="patchcore", image_size=64, device="cpu", seed=0)
    return Trainer(TrainConfig(**options, channels=3)).fit(files), Trainer(TrainConfig(**options, channels=1)).fit(files)


def test_an_rgb_model_finds_a_stain_that_gray_cannot_see(colour_and_gray):
    colour, gray = colour_and_gray
    rng = np.random.default_rng(7)
    goods = [painted_part(100 + i) for i in range(8)]
    bases = [painted_part(200 + i) for i in range(8)]
    stains = [paint_defect(base, rng, "stain", scale=1.5) for base in bases]

    colour_p, gray_p = Predictor(colour, "cpu"), Predictor(gray, "cpu")
    good = [p.score for p in colour_p.predict_batch(goods)]
    stained = [p.score for p in colour_p.predict_batch([s for s, _ in stains])]
    assert np.mean([s > max(good) for s in stained]) >= 0.75, "the colour model ranks most stains above every good part"
    assert all(s > b.score for s, b in zip(stained, colour_p.predict_batch(bases))), "each stain raises its part's score"
    # in gray a stained part is its clean part (but for a few pixels where the colour clipped): the same score
    assert [p.score for p in gray_p.predict_batch([s for s, _ in stains])] == pytest.approx([p.score for p in gray_p.predict_batch(bases)], rel=0.005)

    p = colour_p.predict(stains[0][0])
    assert p.reconstruction.shape == (64, 64, 3) and p.overlay().shape == (64, 64, 3)
    y, x = np.unravel_index(np.argmax(p.anomaly_map), p.anomaly_map.shape)
    assert stains[0][1][max(0, y - 6) : y + 7, max(0, x - 6) : x + 7].any(), "the map's peak is on the stain"
