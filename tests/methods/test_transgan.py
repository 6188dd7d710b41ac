"""TransGAN with AnoGAN's latent search: what is its own (the search, sampling)."""

import torch

from inspector.models import create_model
from tests.test_method_contract import TRANSGAN, parts_batch


def test_the_search_improves_the_fit_with_frozen_networks_under_inference_mode():
    from inspector.models.transgan.loss import search_loss

    torch.manual_seed(0)
    model = create_model("transgan", image_size=32, channels=1, **TRANSGAN | {"search_steps": 20}).eval()
    batch = parts_batch(4, 32)
    with torch.inference_mode():
        z0 = model.encoder(batch)
        z, steps = model.search(batch)

        def loss(latent):
            x_hat = model.generator(latent)
            return search_loss(batch, x_hat, model.discriminator(batch)[1], model.discriminator(x_hat)[1], 0.1)

        assert steps == 20 and (loss(z) < loss(z0)).all()  # every image of the batch gets better
    assert all(p.requires_grad and p.grad is None for p in model.parameters())  # weights untouched, unfrozen after


def test_the_search_stops_when_its_time_is_spent():
    model = create_model("transgan", image_size=32, channels=1, **TRANSGAN | {"search_steps": 1000, "search_time_s": 1e-9})
    with torch.no_grad():
        _, steps = model.eval().search(parts_batch(2, 32))
    assert steps == 0


def test_a_random_start_search_is_repeatable():
    options = TRANSGAN | {"use_encoder": False, "search_init_k": 4, "search_steps": 3}
    model = create_model("transgan", image_size=32, channels=1, **options).eval()
    batch = parts_batch(3, 32)
    with torch.no_grad():
        assert torch.equal(model.score(batch).image_score, model.score(batch).image_score)


def test_samples_are_images():
    model = create_model("transgan", image_size=64, channels=3, **TRANSGAN)
    samples = model.sample(3, torch.Generator().manual_seed(0))
    assert samples.shape == (3, 3, 64, 64) and samples.abs().max() <= 1
