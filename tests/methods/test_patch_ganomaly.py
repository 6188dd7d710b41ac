"""Patch-GANomaly: the patch geometry (shared with TL-GANomaly) and its options."""

import pytest
import torch

from inspector.models import create_model
from inspector.models.components.patchwise import extract_windows, random_patches, stitch, window_starts

TINY = {"width": 8, "nz": 16}


def test_the_sliding_window_covers_any_size_and_stitching_averages_overlaps():
    assert window_starts(80, 32, 16) == [0, 16, 32, 48]
    assert window_starts(72, 32, 16) == [0, 16, 32, 40]  # the last window is flush with the edge
    assert window_starts(20, 32, 16) == [0]
    x = torch.rand(2, 3, 48, 72)
    windows, origins = extract_windows(x, 32, 16)
    assert windows.shape == (2, len(origins), 3, 32, 32)
    assert torch.allclose(stitch(windows, origins, 48, 72), x)  # overlapping copies average back to x
    model = create_model("patch-ganomaly", image_size=64, channels=1, patch_size=32, **TINY).eval()
    with torch.no_grad():
        out = model.score(torch.rand(1, 1, 48, 72) * 2 - 1)  # not the working size, not a multiple of the stride
    assert out.anomaly_map.shape == (1, 48, 72) and out.reconstruction.shape == (1, 1, 48, 72)


def test_random_patches_are_crops_of_their_own_image():
    x = torch.arange(2 * 64 * 64, dtype=torch.float32).view(2, 1, 64, 64)
    patches = random_patches(x, 16, per_image=3, generator=torch.Generator().manual_seed(0))
    assert patches.shape == (6, 1, 16, 16)
    for i, p in enumerate(patches):
        image = x[i // 3, 0]
        y, xx = divmod(int(p[0, 0, 0].item()) - i // 3 * 64 * 64, 64)
        assert torch.equal(p[0], image[y : y + 16, xx : xx + 16])


def test_patch_options_are_validated():
    with pytest.raises(ValueError, match="patch_size"):
        create_model("patch-ganomaly", image_size=64, patch_size=24)
    with pytest.raises(ValueError, match="patch_size"):
        create_model("patch-ganomaly", image_size=32, patch_size=64)
    with pytest.raises(ValueError, match="map_mode"):
        create_model("patch-ganomaly", image_size=64, map_mode="nope")
    with pytest.raises(ValueError, match="score_reduce"):
        create_model("tl-ganomaly", image_size=64, score_reduce="mean", pretrained=False)
