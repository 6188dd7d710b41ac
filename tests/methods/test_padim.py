"""PaDiM: the random channel subset, the Gaussians' grid and the model file's size, a planted defect on
a textured part found where it is, and a model file that scores as the model did."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from inspector.data.images import list_images, read_image
from inspector.engine.bundle import ModelBundle
from inspector.engine.predictor import Predictor
from inspector.engine.trainer import TrainConfig, Trainer
from inspector.models import create_model
from inspector.models.padim.model import CHANNELS
from tests.methods.test_patchcore import PACKAGE, planted

pytestmark = pytest.mark.skipif(importlib.util.find_spec(PACKAGE) is None, reason=f"{PACKAGE} is not installed (./dev installs it)")


def test_the_channels_kept_are_a_random_subset_drawn_from_the_seed():
    torch.manual_seed(0)
    a = create_model("padim", image_size=32, feature_dim=40).kept
    torch.manual_seed(0)
    b = create_model("padim", image_size=32, feature_dim=40).kept
    torch.manual_seed(1)
    c = create_model("padim", image_size=32, feature_dim=40).kept
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(a.unique()) == 40 and a.min() >= 0 and a.max() < CHANNELS
    assert len(create_model("padim", image_size=32, feature_dim=CHANNELS).kept.unique()) == CHANNELS


def test_the_grid_is_at_most_a_quarter_of_the_image_and_the_file_holds_its_precisions():
    model = create_model("padim", image_size=64, grid=32, feature_dim=20)
    assert model.gaussian.grid == 16  # stride 4 at 64 px
    assert tuple(model.gaussian.precision.shape) == (256, 20, 20)


def test_a_planted_defect_on_a_textured_part_scores_above_good_parts_and_its_map_peaks_inside():
    ranked, peaks = planted("padim")
    assert ranked > 0.9 and peaks >= 0.75


def test_save_then_load_gives_identical_scores(parts_dir, tmp_path):
    config = TrainConfig(method="padim", image_size=64, batch_size=8, device="cpu", params={"feature_dim": 32, "grid": 8})
    bundle = Trainer(config).fit(list_images(parts_dir))
    path = bundle.save(tmp_path / "m.inspector")
    loaded = ModelBundle.load(path)
    assert loaded.model.gaussian.fitted and torch.equal(loaded.model.kept, bundle.model.kept)
    weights = sum(v.numel() * v.element_size() for v in bundle.model.state_dict().values())
    assert weights < path.stat().st_size < weights + 200_000
    images = [read_image(p) for p in list_images(parts_dir)[:6]]
    a = Predictor(bundle, "cpu").predict_batch(images)
    b = Predictor(loaded, "cpu").predict_batch(images)
    assert [p.score for p in a] == [p.score for p in b]
    assert all(np.array_equal(p.anomaly_map, q.anomaly_map) for p, q in zip(a, b))
