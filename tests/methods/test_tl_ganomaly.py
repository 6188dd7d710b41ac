"""TL-GANomaly: its ImageNet backbones, found locally or named, never downloaded; frozen or patch-wise."""

import warnings

import pytest
import torch

from inspector.models import StepContext, create_model
from inspector.models.components.pretrained import PretrainedWeightsError
from inspector.models.components.resnet import ResNet18
from tests.conftest import mobilenet_file
from tests.test_method_contract import NO_WEIGHTS, parts_batch

TINY = {"width": 8, "nz": 16}


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


def test_a_named_weights_file_is_loaded_strictly_and_recorded(tmp_path, torch_home):
    reference = torchvision_style_file(tmp_path / "resnet18-f37072fd.pth")
    model = create_model("tl-ganomaly", image_size=32, channels=1, **TINY, pretrained_path=str(tmp_path / "resnet18-f37072fd.pth"))
    assert model.pretrained_source == f"imagenet:{tmp_path / 'resnet18-f37072fd.pth'}"
    assert model.config.to_dict()["pretrained_source"] == model.pretrained_source  # travels in the model file
    backbone = model.generator.encoder1.backbone.state_dict()
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    assert backbone.keys() == expected.keys()
    assert all(torch.equal(backbone[k], v) for k, v in expected.items())


def test_torchvisions_cache_is_found_without_a_path(torch_home):
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


def test_a_wrong_weights_file_gives_a_clear_error(tmp_path, torch_home):
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


def test_a_frozen_backbone_keeps_its_weights_and_statistics(tmp_path, torch_home):
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
