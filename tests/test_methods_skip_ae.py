"""Skip-GANomaly, its inpainting and segmenting variants and the autoencoder baseline, on small synthetic parts."""

import numpy as np
import pytest
import torch

from inspector.data.images import list_images, read_image
from inspector.engine.bundle import ModelBundle
from inspector.engine.predictor import Predictor
from inspector.engine.trainer import TrainConfig, Trainer
from inspector.models import StepContext, create_model
from inspector.models.inpaint_skip_ganomaly.masks import grid_masks, random_masks
from tests.conftest import make_part, planted_blob_check

METHODS = ["skip-ganomaly", "inpaint-skip-ganomaly", "seg-skip-ganomaly", "autoencoder"]
# tiny networks and a high learning rate so each trains in a few seconds on one CPU thread
TINY = {
    "skip-ganomaly": dict(epochs=30, params={"width": 16, "lr": 1e-3}),
    "inpaint-skip-ganomaly": dict(epochs=30, params={"width": 16, "lr": 1e-3}),
    # paints the planted kind (blob) and one other, as a user names the defects to expect
    "seg-skip-ganomaly": dict(epochs=60, params={"width": 16, "head_width": 8, "lr": 1e-3, "defect_kinds": ["blob", "crack"]}),
    "autoencoder": dict(epochs=40, params={"width": 16, "nz": 32, "lr": 1e-3}),
}


def _parts(n: int, size: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([make_part(rng, size) for _ in range(n)])[:, None]).float() / 127.5 - 1


@pytest.fixture(scope="module", params=METHODS)
def trained(request, parts_dir):
    tiny = TINY[request.param]
    config = TrainConfig(method=request.param, image_size=32, batch_size=8, device="cpu", epochs=tiny["epochs"], params=tiny["params"])
    return Trainer(config).fit(list_images(parts_dir))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("size,channels", [(32, 1), (64, 3), (128, 1)])
def test_score_shapes_and_ranges(method, size, channels):
    model = create_model(method, image_size=size, channels=channels, width=4).eval()
    with torch.no_grad():
        out = model.score(torch.rand(2, channels, size, size) * 2 - 1)
    assert out.image_score.shape == (2,) and torch.isfinite(out.image_score).all()
    assert out.anomaly_map.shape == (2, size, size) and (out.anomaly_map >= 0).all()
    assert out.reconstruction.shape == (2, channels, size, size)
    assert out.reconstruction.min() >= -1 and out.reconstruction.max() <= 1


@pytest.mark.parametrize("method", METHODS)
def test_training_steps_reduce_the_main_loss(method):
    torch.manual_seed(0)
    model = create_model(method, image_size=32, channels=1, width=8, lr=1e-3)
    model.configure_optimizers()
    batch = _parts(16, 32, seed=1)
    ctx = StepContext(torch.device("cpu"))
    losses = [model.training_step(batch, ctx)[model.main_loss] for _ in range(30)]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_planted_defect_scores_above_good_parts_and_map_peaks_inside(trained):
    auroc, inside, _ = planted_blob_check(trained)
    assert auroc > 0.9 and inside >= 0.9


def test_heat_map_scale_stays_within_what_the_map_can_reach(trained):
    scale, top = trained.info.map_scale, trained.model.map_max
    assert scale["low"] < scale["high"] <= (top if top is not None else np.inf)


def test_model_file_round_trip_gives_identical_scores(trained, tmp_path, parts_dir):
    loaded = ModelBundle.load(trained.save(tmp_path / "m.inspector"))
    images = [read_image(p) for p in list_images(parts_dir)[:6]]
    a = [p.score for p in Predictor(trained, "cpu").predict_batch(images)]
    b = [p.score for p in Predictor(loaded, "cpu").predict_batch(images)]
    assert a == b


def test_a_seg_model_file_from_inspector_0_1_0_still_loads(tmp_path):
    """0.1.0 wrote Skip-GANomaly's unused score_weight and score_scale into seg-skip-ganomaly files."""
    from inspector.engine.bundle import ModelInfo
    from inspector.engine.threshold import Threshold

    model = create_model("seg-skip-ganomaly", image_size=32, width=4, head_width=4).eval()
    assert "score_weight" not in model.config.to_dict() and "score_scale" not in model.state_dict()
    model.register_buffer("score_scale", torch.ones(2))  # what 0.1.0 wrote besides the weights
    info = ModelInfo("seg-skip-ganomaly", {**model.config.to_dict(), "score_weight": 0.9}, Threshold(0.5, "manual"))
    path = ModelBundle(model, info).save(tmp_path / "old.inspector")
    loaded = ModelBundle.load(path)
    batch = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.model.score(batch).image_score, model.score(batch).image_score)


def test_combined_score_terms_are_scaled_by_good_images():
    torch.manual_seed(0)
    model = create_model("skip-ganomaly", image_size=32, channels=1, width=4).eval()
    good = _parts(8, 32, seed=2)
    with torch.no_grad():
        model.calibrate([good[:4], good[4:]])
        scores = model.score(good).image_score
    assert torch.allclose(scores.mean(), torch.tensor(1.0), atol=1e-4)  # each term's good mean is 1


def test_training_masks_cover_the_configured_area_and_the_grid_covers_each_pixel_once():
    masks = random_masks(200, 64, np.random.default_rng(0), (0.1, 0.3), cells=8)
    area = masks.mean(axis=(1, 2))
    assert set(np.unique(masks)) <= {0.0, 1.0}
    assert 0.1 <= np.median(area) <= 0.3 and area.min() >= 0.05 and area.max() <= 0.5
    assert (grid_masks(64, 8).sum(dim=0) == 1).all()


def test_inpainting_falls_back_to_the_checkerboard_when_nothing_stands_out():
    torch.manual_seed(0)
    model = create_model("inpaint-skip-ganomaly", image_size=32, channels=1, width=4).eval()
    x = _parts(3, 32, seed=3)
    with torch.no_grad():
        model.pixel_threshold.fill_(float("inf"))
        recon, amap = model.project(x)
        base = model.grid_reconstruction(x)
        again = model.project(x)[1]
    assert torch.equal(recon, base)
    assert torch.equal(amap, again)  # deterministic
    assert torch.allclose(amap, model.residual_map(x, base, sigma=1.0))


def test_the_heads_learning_rate_falls_over_the_trainers_whole_run(parts_dir):
    config = TrainConfig(method="seg-skip-ganomaly", image_size=32, batch_size=8, device="cpu", epochs=2, params={"width": 4, "head_width": 4})
    model = Trainer(config).fit(list_images(parts_dir)).model
    # 32 training images, 4 steps an epoch: the last of 8 steps runs at (1 + cos(7π/8)) / 2 of the start
    assert model.optimizers["head"].param_groups[0]["lr"] == pytest.approx(1e-3 * (1 + np.cos(7 * np.pi / 8)) / 2)


def test_painted_batch_masks_exactly_the_changed_pixels():
    from inspector.models.seg_skip_ganomaly.model import paint_batch

    batch = _parts(16, 32, seed=3)
    painted, masks = paint_batch(batch, 0.5, np.random.default_rng(0), max_defects=2)
    changed = (painted - batch).abs().amax(dim=1, keepdim=True) > 1e-6
    assert torch.equal(changed, masks > 0)
    hit = masks.flatten(1).any(dim=1)
    assert 3 <= int(hit.sum()) <= 13  # about half the images, each with a visible defect
    assert torch.equal(painted[~hit], batch[~hit])
