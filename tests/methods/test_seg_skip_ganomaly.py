"""Segmenting Skip-GANomaly: painted defects, its head (ImageNet MobileNetV2 or U-Net), the Gaussian of
good parts' features (PaDiM) in its score, and model files of earlier versions."""

import importlib.util
import warnings

import cv2
import numpy as np
import pytest
import torch

from inspector.data.images import list_images
from inspector.engine.bundle import ModelBundle, ModelInfo
from inspector.engine.predictor import Predictor
from inspector.engine.threshold import Threshold
from inspector.engine.trainer import TrainConfig, Trainer
from inspector.models import StepContext, create_model
from inspector.models.components import pretrained
from inspector.models.components.mobilenet import MobileNetV2
from inspector.models.components.pretrained import find_weights, load_weights
from inspector.models.seg_skip_ganomaly.torch_model import ImageNetSegmentationHead, SegmentationHead
from tests.conftest import make_part, mobilenet_file, planted_blob_check
from tests.test_method_contract import parts_batch

PACKAGE = pretrained.PACKAGED["mobilenet_v2"][0]
SMALL = dict(image_size=32, channels=1, width=4, head_width=4)


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An empty torchvision cache and no weights package."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setitem(pretrained.PACKAGED, "mobilenet_v2", ("no_such_weights_package", "weights/x.pth"))


# --- painted defects and the head's schedule ---------------------------------------------------
def test_a_painted_batch_masks_exactly_the_changed_pixels():
    from inspector.models.seg_skip_ganomaly.model import paint_batch

    batch = parts_batch(16, 32, seed=3)
    painted, masks = paint_batch(batch, 0.5, np.random.default_rng(0), max_defects=2)
    changed = (painted - batch).abs().amax(dim=1, keepdim=True) > 1e-6
    assert torch.equal(changed, masks > 0)
    hit = masks.flatten(1).any(dim=1)
    assert 3 <= int(hit.sum()) <= 13  # about half the images, each with a visible defect
    assert torch.equal(painted[~hit], batch[~hit])


def test_the_heads_learning_rate_falls_over_the_trainers_whole_run(parts_dir):
    config = TrainConfig(method="seg-skip-ganomaly", image_size=32, batch_size=8, device="cpu", epochs=2, params={"width": 4, "head_width": 4})
    model = Trainer(config).fit(list_images(parts_dir)).model
    # 32 training images, 4 steps an epoch: the last of 8 steps runs at (1 + cos(7π/8)) / 2 of the start
    assert model.optimizers["head"].param_groups[0]["lr"] == pytest.approx(1e-3 * (1 + np.cos(7 * np.pi / 8)) / 2)


# --- the head on ImageNet weights, or the U-Net without them ----------------------------------
@pytest.mark.skipif(importlib.util.find_spec(PACKAGE) is None, reason=f"{PACKAGE} is not installed (./dev installs it)")
def test_torchvisions_imagenet_mobilenet_v2_loads_and_is_found_by_default():
    path = find_weights("mobilenet_v2")
    assert path is not None and path.name == "mobilenet_v2-b0353104.pth"
    model = MobileNetV2()
    load_weights(model, path, "MobileNetV2", ignore=("classifier.",))
    assert not torch.allclose(model.features[0][1].running_var, torch.ones(32))  # trained statistics, not the init
    seg = create_model("seg-skip-ganomaly", **SMALL)
    assert seg.pretrained_source == f"imagenet:{path}" and isinstance(seg.head, ImageNetSegmentationHead)


def test_the_head_is_built_on_the_named_weights_and_its_trunk_stays_frozen(tmp_path):
    reference = mobilenet_file(tmp_path / "mnv2.pth")
    model = create_model("seg-skip-ganomaly", **SMALL, pretrained_path=str(tmp_path / "mnv2.pth"))
    assert model.pretrained_source == f"imagenet:{tmp_path / 'mnv2.pth'}"
    trunk = model.head.trunk.state_dict()
    assert all(torch.equal(v, reference.features.state_dict()[k]) for k, v in trunk.items())
    before = {k: v.clone() for k, v in trunk.items()}
    decoder_before = model.head.out.weight.clone()
    model.configure_optimizers()
    model.train()
    for _ in range(3):
        model.training_step(parts_batch(8, 32, seed=0), StepContext(torch.device("cpu")))
    assert all(torch.equal(before[k], v) for k, v in model.head.trunk.state_dict().items())  # weights and BN statistics
    assert not torch.equal(decoder_before, model.head.out.weight)  # the decoder learns


def test_no_weights_means_the_unet_head_with_a_warning_and_no_new_search_when_rebuilt(no_weights):
    with pytest.warns(UserWarning, match="SCRATCH"):
        model = create_model("seg-skip-ganomaly", **SMALL)
    assert isinstance(model.head, SegmentationHead) and model.pretrained_source.startswith("scratch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rebuilt = create_model("seg-skip-ganomaly", **model.config.to_dict())
    assert isinstance(rebuilt.head, SegmentationHead)


# --- the Gaussian of good parts' features in the score -----------------------------------------
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


# --- model files of earlier versions --------------------------------------------------------------
def _save_as(model, config: dict, path):
    return ModelBundle(model, ModelInfo("seg-skip-ganomaly", config, Threshold(0.5, "manual"))).save(path)


def test_a_model_file_from_inspector_0_1_0_still_loads(tmp_path):
    """0.1.0 wrote Skip-GANomaly's unused score_weight and score_scale into seg-skip-ganomaly files."""
    model = create_model("seg-skip-ganomaly", **SMALL).eval()
    assert "score_weight" not in model.config.to_dict() and "score_scale" not in model.state_dict()
    model.register_buffer("score_scale", torch.ones(2))  # what 0.1.0 wrote besides the weights
    loaded = ModelBundle.load(_save_as(model, {**model.config.to_dict(), "score_weight": 0.9}, tmp_path / "old.inspector"))
    batch = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.model.score(batch).image_score, model.score(batch).image_score)


def test_a_model_file_from_before_the_imagenet_head_loads_with_its_unet_head(tmp_path):
    old = create_model("seg-skip-ganomaly", **SMALL, pretrained=False).eval()
    config = {k: v for k, v in old.config.to_dict().items() if k not in ("pretrained", "pretrained_path", "pretrained_source")}
    # built as today's default (ImageNet head where the weights are found), then the file decides
    loaded = ModelBundle.load(_save_as(old, config, tmp_path / "old.inspector"))
    assert isinstance(loaded.model.head, SegmentationHead)
    batch = parts_batch(3, 32, seed=0)
    with torch.no_grad():
        assert torch.equal(loaded.model.score(batch).image_score, old.score(batch).image_score)


def test_a_model_file_from_before_the_feature_gaussian_scores_with_its_head_alone(tmp_path):
    old = create_model("seg-skip-ganomaly", **SMALL, feature_weight=0.0).eval()
    del old._buffers["score_stats"]  # the layout of a file written before the Gaussian
    config = {k: v for k, v in old.config.to_dict().items() if k not in ("feature_weight", "feature_grid")}
    loaded = ModelBundle.load(_save_as(old, config, tmp_path / "old.inspector")).model
    assert loaded.gaussian is not None and not loaded.gaussian.fitted and loaded.map_max == 1.0
    batch = torch.from_numpy(np.stack([make_part(np.random.default_rng(i), 32) for i in range(3)])[:, None]).float() / 127.5 - 1
    with torch.no_grad():
        assert torch.equal(loaded.score(batch).image_score, old.score(batch).image_score)
