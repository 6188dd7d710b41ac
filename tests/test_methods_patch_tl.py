"""Patch-GANomaly and TL-GANomaly (seed 003): shapes, patch geometry, training, detection,
model files, and the ResNet-18 weights loading (never downloading) of TL-GANomaly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from inspector.data.images import list_images, read_image
from inspector.engine.bundle import ModelBundle
from inspector.engine.predictor import Predictor
from inspector.engine.trainer import TrainConfig, Trainer
from inspector.models import StepContext, create_model
from inspector.models.components.patchwise import extract_windows, random_patches, stitch, window_starts
from inspector.models.components.pretrained import PretrainedWeightsError
from inspector.models.components.resnet import ResNet18
from tests.conftest import make_part, mobilenet_file, planted_blob_check

TINY = {"width": 8, "nz": 16}
NO_WEIGHTS = {"pretrained": False}  # tests never look for (let alone download) ImageNet weights


def tiny(method: str, size: int, channels: int, **options):
    extra = {"patch_size": min(16, size)} if method == "patch-ganomaly" else NO_WEIGHTS
    return create_model(method, image_size=size, channels=channels, **TINY, **extra, **options)


def parts_batch(n: int, size: int, seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([make_part(rng, size) for _ in range(n)])[:, None]).float() / 127.5 - 1


# --- shapes and geometry -----------------------------------------------------------------
@pytest.mark.parametrize("method", ["patch-ganomaly", "tl-ganomaly"])
@pytest.mark.parametrize("size,channels", [(32, 1), (32, 3), (64, 1), (64, 3), (128, 1)])
def test_score_shapes_and_ranges(method, size, channels):
    model = tiny(method, size, channels).eval()
    with torch.no_grad():
        out = model.score(torch.rand(2, channels, size, size) * 2 - 1)
    assert out.image_score.shape == (2,) and torch.isfinite(out.image_score).all()
    assert out.anomaly_map.shape == (2, size, size) and (out.anomaly_map >= 0).all()
    assert out.reconstruction.shape == (2, channels, size, size)
    assert out.reconstruction.min() >= -1 and out.reconstruction.max() <= 1


def test_sliding_window_covers_any_size_and_stitching_averages_overlaps():
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


def test_options_are_validated():
    with pytest.raises(ValueError, match="patch_size"):
        create_model("patch-ganomaly", image_size=64, patch_size=24)
    with pytest.raises(ValueError, match="patch_size"):
        create_model("patch-ganomaly", image_size=32, patch_size=64)
    with pytest.raises(ValueError, match="map_mode"):
        create_model("patch-ganomaly", image_size=64, map_mode="nope")
    with pytest.raises(ValueError, match="score_reduce"):
        create_model("tl-ganomaly", image_size=64, score_reduce="mean", pretrained=False)


# --- training ------------------------------------------------------------------------------
@pytest.mark.parametrize("method,steps", [("patch-ganomaly", 30), ("tl-ganomaly", 20)])
def test_training_steps_reduce_the_generator_loss(method, steps):
    torch.manual_seed(0)
    model = tiny(method, 32, 1, lr=1e-3)
    model.configure_optimizers()
    batch = parts_batch(16, 32)
    ctx = StepContext(torch.device("cpu"))
    losses = [model.training_step(batch, ctx)["g_loss"] for _ in range(steps)]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


# Short runs through the Trainer at 32 px. Patch-GANomaly works on 16 px patches. TL-GANomaly's
# cost is its 11 M ResNet parameters (Adam and weight gradients), not the pixels, so it takes few
# big batches. Both need lr 1e-3 to learn the parts in a few seconds.
TRAINED = {
    "patch-ganomaly": (8, 50, {"width": 32, "nz": 16, "patch_size": 16, "patches_per_image": 4, "lr": 1e-3}),
    "tl-ganomaly": (32, 60, {"width": 32, "nz": 16, "lr": 1e-3, **NO_WEIGHTS}),
}


@pytest.fixture(scope="module", params=list(TRAINED))
def trained(request, parts_dir):
    """Each method trained briefly through the Trainer at 32 px on the synthetic parts."""
    method = request.param
    batch_size, epochs, params = TRAINED[method]
    config = TrainConfig(method=method, image_size=32, epochs=epochs, batch_size=batch_size, device="cpu", params=params)
    return Trainer(config).fit(list_images(parts_dir))


def test_planted_defect_scores_above_good_parts_and_map_peaks_inside(trained):
    auroc, inside, _ = planted_blob_check(trained)
    assert auroc > 0.9 and inside >= 0.9
    calibration = trained.info.metrics["calibration"]  # the trainer's synthetic defects at the working size
    assert calibration["synthetic_image_auroc"] > 0.7 and calibration["synthetic_pixel_auroc"] > 0.7


def test_model_file_round_trip_gives_identical_scores(trained, tmp_path, parts_dir):
    path = trained.save(tmp_path / "m.inspector")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilding a saved TL model must not look for ImageNet weights
        loaded = ModelBundle.load(path)
    assert loaded.info.to_dict() == trained.info.to_dict()
    images = [read_image(p) for p in list_images(parts_dir)[:6]]
    a = [p.score for p in Predictor(trained, "cpu").predict_batch(images)]
    b = [p.score for p in Predictor(loaded, "cpu").predict_batch(images)]
    assert a == b


# --- TL-GANomaly: ImageNet weights, found locally or named, never downloaded ---------------
@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def torchvision_style_file(path, seed: int = 0):
    """A random ResNet-18 saved under torchvision's keys, as resnet18-f37072fd.pth is."""
    torch.manual_seed(seed)
    reference = ResNet18(num_classes=1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), path)
    return reference


def test_named_weights_file_is_loaded_strictly_and_recorded(tmp_path, torch_home):
    reference = torchvision_style_file(tmp_path / "resnet18-f37072fd.pth")
    model = create_model("tl-ganomaly", image_size=32, channels=1, **TINY, pretrained_path=str(tmp_path / "resnet18-f37072fd.pth"))
    assert model.pretrained_source == f"imagenet:{tmp_path / 'resnet18-f37072fd.pth'}"
    assert model.config.to_dict()["pretrained_source"] == model.pretrained_source  # travels in the model file
    backbone = model.generator.encoder1.backbone.state_dict()
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    assert backbone.keys() == expected.keys()
    assert all(torch.equal(backbone[k], v) for k, v in expected.items())


def test_torchvision_cache_is_found_without_a_path(torch_home):
    torchvision_style_file(torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    model = create_model("tl-ganomaly", image_size=32, channels=3, **TINY)
    assert model.pretrained_source.startswith("imagenet:") and model.pretrained_source.endswith("resnet18-f37072fd.pth")


def test_no_weights_means_scratch_with_a_warning(torch_home):
    with pytest.warns(UserWarning, match="SCRATCH"):
        model = create_model("tl-ganomaly", image_size=32, channels=1, **TINY)
    assert model.pretrained_source.startswith("scratch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt from its saved config: no new search, no new warning
        rebuilt = create_model("tl-ganomaly", **model.config.to_dict())
    assert rebuilt.pretrained_source == model.pretrained_source


def test_wrong_weights_file_gives_a_clear_error(tmp_path, torch_home):
    wrong = tmp_path / "not-resnet.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, wrong)
    with pytest.raises(PretrainedWeightsError, match="not torchvision ResNet-18 weights.*missing"):
        create_model("tl-ganomaly", image_size=32, channels=1, **TINY, pretrained_path=str(wrong))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedWeightsError, match="not a readable"):
        create_model("tl-ganomaly", image_size=32, channels=1, **TINY, pretrained_path=str(garbage))
    with pytest.raises(PretrainedWeightsError, match="not found"):
        create_model("tl-ganomaly", image_size=32, channels=1, **TINY, pretrained_path=str(tmp_path / "missing.pth"))


def test_frozen_backbone_keeps_its_weights_and_statistics(tmp_path, torch_home):
    torchvision_style_file(tmp_path / "r18.pth")
    model = create_model("tl-ganomaly", image_size=32, channels=1, **TINY, pretrained_path=str(tmp_path / "r18.pth"), freeze_backbone=True)
    before = {k: v.clone() for k, v in model.generator.encoder1.backbone.state_dict().items()}
    model.configure_optimizers()
    model.train()
    model.training_step(parts_batch(8, 32), StepContext(torch.device("cpu")))
    after = model.generator.encoder1.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_patch_wise_tl_ganomaly_uses_windows():
    model = create_model("tl-ganomaly", image_size=64, channels=1, patch_size=32, **TINY, **NO_WEIGHTS).eval()
    with torch.no_grad():
        out = model.score(torch.rand(2, 1, 64, 64) * 2 - 1)
    assert out.anomaly_map.shape == (2, 64, 64)
    assert model.generator.decoder(torch.zeros(1, 16, 1, 1)).shape[-1] == 32  # the GAN works on 32 px patches


def test_a_mobilenet_v2_backbone_is_built_on_its_named_weights(tmp_path, torch_home):
    reference = mobilenet_file(tmp_path / "mnv2.pth")
    model = create_model("tl-ganomaly", image_size=32, channels=1, **TINY, backbone="mobilenet_v2", pretrained_path=str(tmp_path / "mnv2.pth"))
    assert model.pretrained_source == f"imagenet:{tmp_path / 'mnv2.pth'}"
    backbone = model.generator.encoder1.backbone.state_dict()
    assert all(torch.equal(backbone[k], v) for k, v in reference.state_dict().items())
    with torch.no_grad():
        assert model.eval().score(parts_batch(2, 32)).anomaly_map.shape == (2, 32, 32)
    with pytest.raises(ValueError, match="backbone must be one of"):
        create_model("tl-ganomaly", image_size=32, backbone="vgg16", pretrained=False)
