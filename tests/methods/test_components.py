"""The shared model parts (inspector.models.components) on their own: the feature Gaussian, ImageNet
weights found and checked, the two-term calibrated score, the discriminator reset."""

import hashlib

import pytest
import torch

from inspector.models import create_model
from inspector.models.components import pretrained
from inspector.models.components.adversarial import reset_if_won
from inspector.models.components.dcgan import DCDiscriminator
from inspector.models.components.feature_gaussian import PositionGaussian
from inspector.models.components.mobilenet import MobileNetV2
from inspector.models.components.pretrained import PretrainedWeightsError, find_weights, load_weights
from inspector.models.components.resnet import ResNet18
from tests.conftest import mobilenet_file
from tests.test_method_contract import SPECS, parts_batch


# --- feature_gaussian ------------------------------------------------------------------------------
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


# --- pretrained ------------------------------------------------------------------------------------
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


# --- two_term: each term in units of its mean on good images ------------------------------------------
@pytest.mark.parametrize("method,options", [
    ("ganomaly", {"score_mode": "combined", "score_weight": 0.6}),  # its buffer stores the terms the other way round
    ("skip-ganomaly", {}),
    ("inpaint-skip-ganomaly", {"score_weight": 0.5}),
    ("bigan", {}),
    ("transgan", {}),
])
def test_calibration_puts_both_score_terms_on_one_scale(method, options):
    torch.manual_seed(0)
    model = create_model(method, image_size=32, channels=1, **SPECS[method].tiny | options).eval()
    good = parts_batch(8, 32, seed=2)
    with torch.no_grad():
        model.calibrate([good[:4], good[4:]])
        scores = model.score(good).image_score
    scale = model.score_scale
    assert torch.isfinite(scale).all() and (scale > 0).all() and not torch.equal(scale, torch.ones(2))
    assert torch.allclose(scores.mean(), torch.tensor(1.0), atol=1e-4)  # each term's good mean is 1


def test_calibrating_on_no_images_leaves_the_scale_as_it_was():
    model = create_model("skip-ganomaly", image_size=32, channels=1, width=4).eval()
    with torch.no_grad():
        model.calibrate([])
    assert torch.equal(model.score_scale, torch.ones(2))


# --- adversarial --------------------------------------------------------------------------------------
def test_a_discriminator_that_has_won_starts_afresh_and_one_that_has_not_is_kept():
    torch.manual_seed(0)
    discriminator = DCDiscriminator(32, 1, 4)
    weights = discriminator.classifier.weight
    weights.data.fill_(5.0)
    reset_if_won(discriminator, 1e-3)
    assert torch.all(weights == 5.0)
    reset_if_won(discriminator, 1e-6)
    assert weights.std() > 0 and weights.abs().max() < 1  # N(0, 0.02), DCGAN's initialisation
