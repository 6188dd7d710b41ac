"""The Gaussian of good parts' ImageNet features per position (PaDiM) in seg-skip-ganomaly's score."""

import cv2
import numpy as np
import torch

from inspector.data.images import list_images
from inspector.engine.bundle import ModelBundle, ModelInfo
from inspector.engine.predictor import Predictor
from inspector.engine.threshold import Threshold
from inspector.engine.trainer import TrainConfig, Trainer
from inspector.models import create_model
from inspector.models.components.feature_gaussian import PositionGaussian
from tests.conftest import make_part, planted_blob_check

SMALL = dict(image_size=32, channels=1, width=4, head_width=4)


def test_the_distance_follows_the_covariance_of_good_parts():
    torch.manual_seed(0)
    a = torch.randn(500, 1, 2, 2)
    good = torch.cat([a, a + 0.05 * torch.randn_like(a)], dim=1)  # two features that move together
    gaussian = PositionGaussian(channels=2, grid=2)
    gaussian.fit([good[:200], good[200:]])
    along = torch.ones(1, 2, 2, 2)  # far out, but as good parts vary
    across = torch.tensor([0.5, -0.5]).view(1, 2, 1, 1).expand(1, 2, 2, 2)  # nearer, but as no good part does
    assert (gaussian(across) > 3 * gaussian(along)).all()
    independent = torch.randn(500, 4, 2, 2) * 3 + 1
    gaussian = PositionGaussian(channels=4, grid=2)
    gaussian.fit([independent])
    assert abs(gaussian(independent).pow(2).mean().item() - 4) < 0.1  # a good part's squared distance ≈ its features


def test_fewer_good_images_than_features_still_fit_and_an_odd_position_stands_out():
    torch.manual_seed(0)
    good = torch.randn(6, 16, 4, 4) * 0.1
    gaussian = PositionGaussian(channels=16, grid=4)
    assert not gaussian.fitted
    gaussian.fit([good])
    assert gaussian.fitted and torch.isfinite(gaussian.precision).all()
    odd = good[:1].clone()
    odd[0, :, 2, 1] += 0.5
    assert gaussian(odd)[0].argmax().item() == 2 * 4 + 1


def test_the_feature_gaussian_alone_finds_a_planted_defect_without_training(parts_dir):
    """Zero epochs: the networks are untrained, so only the ImageNet trunk's Gaussian can find it."""
    params = {"width": 4, "head_width": 4, "feature_weight": 1.0}
    config = TrainConfig(method="seg-skip-ganomaly", image_size=64, device="cpu", epochs=0, params=params)
    bundle = Trainer(config).fit(list_images(parts_dir))
    assert bundle.model.gaussian.fitted and bundle.model.map_max is None
    auroc, inside, _ = planted_blob_check(bundle)
    assert auroc > 0.9 and inside >= 0.9


def test_crops_in_the_fit_keep_a_part_framed_a_little_differently_from_being_an_anomaly(parts_dir):
    rng = np.random.default_rng(5)
    reframed = [cv2.resize(make_part(rng)[2:-2, 2:-2], (64, 64), interpolation=cv2.INTER_AREA) for _ in range(16)]
    flagged = {}
    for jitter in (0.0, 0.1):
        params = {"width": 4, "head_width": 4, "feature_weight": 1.0, "feature_jitter": jitter}
        bundle = Trainer(TrainConfig(method="seg-skip-ganomaly", image_size=64, device="cpu", epochs=0, params=params)).fit(list_images(parts_dir))
        predictor = Predictor(bundle, "cpu")
        flagged[jitter] = np.mean([p.score > predictor.threshold for p in predictor.predict_batch(reframed)])
    assert flagged[0.0] >= 0.8 and flagged[0.1] <= 0.25  # 2 pixels less on each side: every part an anomaly without


def test_each_term_counts_in_units_of_held_out_good_parts_spread(parts_dir):
    config = TrainConfig(method="seg-skip-ganomaly", image_size=32, device="cpu", epochs=0, params={"width": 4, "head_width": 4})
    bundle = Trainer(config).fit(list_images(parts_dir))
    model = bundle.model
    median, spread = model.score_stats.unbind(dim=1)
    assert (spread > 0).all() and not torch.equal(model.score_stats, torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    rng = np.random.default_rng(7)
    scores = [p.score for p in Predictor(bundle, "cpu").predict_batch([make_part(rng) for _ in range(24)])]
    assert abs(float(np.median(scores))) < 1.0  # a new good part scores near 0, its terms' typical good value


def test_a_model_file_from_before_the_feature_gaussian_scores_with_its_head_alone(tmp_path):
    old = create_model("seg-skip-ganomaly", **SMALL, feature_weight=0.0).eval()
    del old._buffers["score_stats"]  # the layout of a file written before the Gaussian
    config = {k: v for k, v in old.config.to_dict().items() if k not in ("feature_weight", "feature_grid")}
    path = ModelBundle(old, ModelInfo("seg-skip-ganomaly", config, Threshold(0.5, "manual"))).save(tmp_path / "old.inspector")
    loaded = ModelBundle.load(path).model
    assert loaded.gaussian is not None and not loaded.gaussian.fitted and loaded.map_max == 1.0
    batch = torch.from_numpy(np.stack([make_part(np.random.default_rng(i), 32) for i in range(3)])[:, None]).float() / 127.5 - 1
    with torch.no_grad():
        assert torch.equal(loaded.score(batch).image_score, old.score(batch).image_score)
