"""ImageNet weights found on this machine (never downloaded) and seg-skip-ganomaly's head built on them."""

import hashlib
import importlib.util
import warnings

import numpy as np
import pytest
import torch

from inspector.engine.bundle import ModelBundle, ModelInfo
from inspector.engine.threshold import Threshold
from inspector.models import StepContext, create_model
from inspector.models.components import pretrained
from inspector.models.components.mobilenet import MobileNetV2
from inspector.models.components.pretrained import PretrainedWeightsError, find_weights, load_weights
from inspector.models.components.resnet import ResNet18
from inspector.models.seg_skip_ganomaly.torch_model import ImageNetSegmentationHead, SegmentationHead
from tests.conftest import make_part, mobilenet_file

PACKAGE = pretrained.PACKAGED["mobilenet_v2"][0]
SMALL = dict(image_size=32, channels=1, width=4, head_width=4)


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An empty torchvision cache and no weights package."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setitem(pretrained.PACKAGED, "mobilenet_v2", ("no_such_weights_package", "weights/x.pth"))


def _parts(n: int, size: int = 32) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy(np.stack([make_part(rng, size) for _ in range(n)])[:, None]).float() / 127.5 - 1


def test_a_packaged_file_is_used_only_when_its_hash_matches_its_torchvision_name(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    package = tmp_path / "site" / "fake_weights"
    (package / "weights").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    data = b"pretend weights"
    good = package / "weights" / f"mobilenet_v2-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    good.write_bytes(data)
    monkeypatch.setitem(pretrained.PACKAGED, "mobilenet_v2", ("fake_weights", f"weights/{good.name}"))
    assert find_weights("mobilenet_v2") == good
    damaged = package / "weights" / "mobilenet_v2-00000000.pth"
    damaged.write_bytes(data)
    monkeypatch.setitem(pretrained.PACKAGED, "mobilenet_v2", ("fake_weights", f"weights/{damaged.name}"))
    with pytest.raises(PretrainedWeightsError, match="damaged"):
        find_weights("mobilenet_v2")


def test_a_named_file_comes_first_then_torchvisions_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    cached = tmp_path / "torch-home" / "hub" / "checkpoints" / "mobilenet_v2-12345678.pth"
    mobilenet_file(cached)
    assert find_weights("mobilenet_v2") == cached
    assert find_weights("mobilenet_v2", str(tmp_path / "mine.pth")) == tmp_path / "mine.pth"


def test_another_architectures_weights_are_refused_by_name(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(ResNet18().state_dict(), path)
    with pytest.raises(PretrainedWeightsError, match="not torchvision MobileNetV2 weights.*missing"):
        load_weights(MobileNetV2(), path, "MobileNetV2", ignore=("classifier.",))


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
        model.training_step(_parts(8), StepContext(torch.device("cpu")))
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


def test_a_model_file_from_before_the_imagenet_head_loads_with_its_unet_head(tmp_path):
    old = create_model("seg-skip-ganomaly", **SMALL, pretrained=False).eval()
    config = {k: v for k, v in old.config.to_dict().items() if k not in ("pretrained", "pretrained_path", "pretrained_source")}
    path = ModelBundle(old, ModelInfo("seg-skip-ganomaly", config, Threshold(0.5, "manual"))).save(tmp_path / "old.inspector")
    # built as today's default (ImageNet head where the weights are found), then the file decides
    loaded = ModelBundle.load(path)
    assert isinstance(loaded.model.head, SegmentationHead)
    batch = _parts(3)
    with torch.no_grad():
        assert torch.equal(loaded.model.score(batch).image_score, old.score(batch).image_score)
