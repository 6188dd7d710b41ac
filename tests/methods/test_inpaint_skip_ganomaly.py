"""Inpainting Skip-GANomaly: its masks and its hide-and-complete scoring."""

import numpy as np
import torch

from inspector.models import create_model
from inspector.models.inpaint_skip_ganomaly.masks import grid_masks, random_masks
from tests.test_method_contract import parts_batch


def test_training_masks_cover_the_configured_area_and_the_grid_covers_each_pixel_once():
    masks = random_masks(200, 64, np.random.default_rng(0), (0.1, 0.3), cells=8)
    area = masks.mean(axis=(1, 2))
    assert set(np.unique(masks)) <= {0.0, 1.0}
    assert 0.1 <= np.median(area) <= 0.3 and area.min() >= 0.05 and area.max() <= 0.5
    assert (grid_masks(64, 8).sum(dim=0) == 1).all()


def test_scoring_falls_back_to_the_checkerboard_when_nothing_stands_out():
    torch.manual_seed(0)
    model = create_model("inpaint-skip-ganomaly", image_size=32, channels=1, width=4).eval()
    x = parts_batch(3, 32, seed=3)
    with torch.no_grad():
        model.pixel_threshold.fill_(float("inf"))
        recon, amap = model.project(x)
        base = model.grid_reconstruction(x)
        again = model.project(x)[1]
    assert torch.equal(recon, base)
    assert torch.equal(amap, again)  # deterministic
    assert torch.allclose(amap, model.residual_map(x, base, sigma=1.0))
