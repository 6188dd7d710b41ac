"""BiGAN (Wasserstein critic) and TransGAN (latent search): shapes, training, detection, model files."""

import numpy as np
import pytest
import torch

from inspector.data.images import list_images, read_image
from inspector.engine.bundle import ModelBundle
from inspector.engine.predictor import Predictor
from inspector.engine.trainer import TrainConfig, Trainer
from inspector.models import StepContext, create_model
from tests.conftest import make_part, planted_blob_check

# tiny networks and a high learning rate, so a few seconds of CPU training are enough
TINY = {
    "bigan": {"width": 8, "nz": 16, "critic_hidden": 32, "n_critic": 2, "w_rec": 50.0, "lr": 1e-3},
    "transgan": {"dim": 32, "depth": 1, "d_dim": 16, "d_depth": 1, "nz": 32, "encoder_width": 16, "w_rec": 50.0,
                 "lr": 1e-3, "search_steps": 5},
}
METHODS = list(TINY)
# TransGAN needs more epochs: at 30 its planted-blob AUROC was 0.81-0.88 over three seeds on an
# Intel Xeon (oneDNN's kernels differ per CPU, and a GAN's path with them), at 50 0.95-1.0
EPOCHS = {"bigan": 30, "transgan": 50}


def parts_batch(n: int, size: int, seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([make_part(rng, size) for _ in range(n)])[:, None]).float() / 127.5 - 1


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("size,channels", [(32, 1), (64, 3), (128, 1)])
def test_score_shapes_and_ranges(method, size, channels):
    options = TINY[method] | ({"search_steps": 2} if method == "transgan" else {})
    model = create_model(method, image_size=size, channels=channels, **options).eval()
    with torch.no_grad():
        out = model.score(torch.rand(2, channels, size, size) * 2 - 1)
        samples = model.sample(3, torch.Generator().manual_seed(0))
    assert out.image_score.shape == (2,) and torch.isfinite(out.image_score).all()
    assert out.anomaly_map.shape == (2, size, size) and (out.anomaly_map >= 0).all()
    assert out.reconstruction.shape == (2, channels, size, size)
    assert out.reconstruction.min() >= -1 and out.reconstruction.max() <= 1
    assert samples.shape == (3, channels, size, size) and samples.abs().max() <= 1


@pytest.mark.parametrize("method", METHODS)
def test_training_steps_reduce_the_main_loss(method):
    torch.manual_seed(0)
    model = create_model(method, image_size=32, channels=1, **TINY[method])
    model.configure_optimizers()
    batch = parts_batch(16, 32)
    ctx = StepContext(torch.device("cpu"))
    losses = [model.training_step(batch, ctx)[model.main_loss] for _ in range(30)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


@pytest.fixture(scope="module", params=METHODS)
def trained(request, parts_dir):
    """Each method trained briefly at 32 px on the synthetic parts, through the Trainer."""
    config = TrainConfig(method=request.param, image_size=32, epochs=EPOCHS[request.param], batch_size=8, device="cpu",
                         params=TINY[request.param])
    return Trainer(config).fit(list_images(parts_dir))


def test_planted_defect_scores_above_good_parts_and_map_peaks_inside(trained):
    auroc, inside, peaks = planted_blob_check(trained)
    assert auroc > 0.9 and inside >= 0.9 and peaks >= 0.75


def test_calibration_puts_both_score_terms_on_one_scale(trained):
    scale = trained.model.score_scale
    assert torch.isfinite(scale).all() and (scale > 0).all() and not torch.equal(scale, torch.ones(2))


def test_model_file_round_trip_gives_identical_scores(trained, tmp_path, parts_dir):
    loaded = ModelBundle.load(trained.save(tmp_path / "m.inspector"))
    assert loaded.info.to_dict() == trained.info.to_dict()
    images = [read_image(p) for p in list_images(parts_dir)[:6]]
    a = [p.score for p in Predictor(trained, "cpu").predict_batch(images)]
    b = [p.score for p in Predictor(loaded, "cpu").predict_batch(images)]
    assert a == b


# --- BiGAN ---------------------------------------------------------------------------------

def test_bigan_critic_has_no_batch_norm_and_samples_are_repeatable():
    model = create_model("bigan", image_size=32, channels=1, **TINY["bigan"])
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.critic.modules())
    model.train()
    a = model.sample(4, torch.Generator().manual_seed(7))
    b = model.sample(4, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and model.training  # eval mode only while sampling


def test_bigan_gradient_penalty_is_near_zero_for_a_unit_gradient_critic():
    from inspector.models.bigan.loss import gradient_penalty

    class Linear(torch.nn.Module):  # value = <w, (x, z)> with |w| = 1: gradient norm exactly 1
        def forward(self, x, z):
            flat = torch.cat([x.flatten(1), z], dim=1)
            return flat.sum(1) / flat.shape[1] ** 0.5, flat

    x, z = torch.randn(4, 1, 4, 4), torch.randn(4, 3)
    assert gradient_penalty(Linear(), x, z, torch.randn_like(x), torch.randn_like(z)).item() < 1e-10


# --- TransGAN ------------------------------------------------------------------------------

def test_transgan_search_improves_the_fit_with_frozen_networks_under_inference_mode():
    from inspector.models.transgan.loss import search_loss

    torch.manual_seed(0)
    model = create_model("transgan", image_size=32, channels=1, **TINY["transgan"] | {"search_steps": 20}).eval()
    batch = parts_batch(4, 32)
    with torch.inference_mode():
        z0 = model.encoder(batch)
        z, steps = model.search(batch)

        def loss(latent):
            x_hat = model.generator(latent)
            return search_loss(batch, x_hat, model.discriminator(batch)[1], model.discriminator(x_hat)[1], 0.1)

        assert steps == 20 and (loss(z) < loss(z0)).all()  # every image of the batch gets better
    assert all(p.requires_grad and p.grad is None for p in model.parameters())  # weights untouched, unfrozen after


def test_transgan_search_stops_when_its_time_is_spent():
    model = create_model("transgan", image_size=32, channels=1, **TINY["transgan"] | {"search_steps": 1000, "search_time_s": 1e-9})
    with torch.no_grad():
        _, steps = model.eval().search(parts_batch(2, 32))
    assert steps == 0


def test_transgan_random_start_search_is_repeatable():
    options = TINY["transgan"] | {"use_encoder": False, "search_init_k": 4, "search_steps": 3}
    model = create_model("transgan", image_size=32, channels=1, **options).eval()
    batch = parts_batch(3, 32)
    with torch.no_grad():
        assert torch.equal(model.score(batch).image_score, model.score(batch).image_score)
