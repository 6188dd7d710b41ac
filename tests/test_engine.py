"""Training, scoring, model files and the registry, on small synthetic parts."""

import numpy as np
import pytest
import torch

from inspector.data.images import list_images, read_image
from inspector.engine.bundle import ModelBundle, ModelFileError
from inspector.engine.events import CancelToken, Cancelled, TrainProgress
from inspector.engine.predictor import Predictor
from inspector.engine.modelref import ModelRefError
from inspector.engine.registry import ModelRegistry, RegistryError
from inspector.engine.trainer import SampleReconstructions, TrainConfig, Trainer
from inspector.models import StepContext, create_model
from tests.conftest import make_part, planted_blob_check


def test_training_steps_reduce_the_generator_loss():
    torch.manual_seed(0)
    model = create_model("ganomaly", image_size=32, channels=1, width=16, nz=32)
    model.configure_optimizers()
    rng = np.random.default_rng(1)
    batch = torch.from_numpy(np.stack([make_part(rng, 32) for _ in range(16)])[:, None]).float() / 127.5 - 1
    ctx = StepContext(torch.device("cpu"))
    losses = [model.training_step(batch, ctx)["g_loss"] for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_cosine_learning_rate_is_a_function_of_the_runs_step():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ctx = StepContext(torch.device("cpu"), total_steps=10)
    rates = []
    for step in (0, 5, 10, 0):  # the last: a resumed run lands on the same curve
        ctx.step = step
        ctx.cosine_lr(optimizer, 0.5)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([0.5, 0.25, 0.0, 0.5])
    ctx.total_steps = 0  # a step called by hand, outside a run: the base rate
    ctx.cosine_lr(optimizer, 0.5)
    assert optimizer.param_groups[0]["lr"] == 0.5


def test_heat_scale_leaves_a_margin_above_good_pixels_up_to_the_maps_largest_value():
    from inspector.engine.trainer import _map_scale

    assert _map_scale(0.1, 0.4, None) == pytest.approx({"low": 0.1, "high": 0.6})
    assert _map_scale(0.1, 0.4, 1.0) == pytest.approx({"low": 0.1, "high": 0.6})
    assert _map_scale(0.1, 0.9, 1.0) == pytest.approx({"low": 0.1, "high": 1.0})  # a probability map: full heat at 1


@pytest.mark.parametrize("size,channels", [(32, 1), (64, 3)])
def test_score_shapes_and_ranges(size, channels):
    model = create_model("ganomaly", image_size=size, channels=channels, width=8, nz=16).eval()
    with torch.no_grad():
        out = model.score(torch.rand(3, channels, size, size) * 2 - 1)
    assert out.image_score.shape == (3,)
    assert out.anomaly_map.shape == (3, size, size)
    assert out.reconstruction.shape == (3, channels, size, size)
    assert out.reconstruction.min() >= -1 and out.reconstruction.max() <= 1
    assert (out.anomaly_map >= 0).all()


def test_planted_defect_scores_above_good_parts_and_map_peaks_inside(tiny_bundle):
    auroc, inside, _ = planted_blob_check(tiny_bundle)
    assert auroc > 0.9 and inside >= 0.9


def test_prediction_shapes_follow_the_input_image(tiny_bundle):
    predictor = Predictor(tiny_bundle, "cpu")
    rgb = np.dstack([make_part(np.random.default_rng(5), 96)[:, :80]] * 3)
    p = predictor.predict(rgb)
    assert p.anomaly_map.shape == (96, 80) and p.heat.shape == (96, 80)
    assert 0 <= p.heat.min() and p.heat.max() <= 1
    assert p.overlay(0.5).shape == (96, 80, 3)
    assert p.decision in ("OK", "NG") and p.is_anomalous == (p.score > p.threshold)


def test_calibrated_threshold_is_stored_and_sane(tiny_bundle):
    t = tiny_bundle.info.threshold
    assert t.method == "good-quantile" and np.isfinite(t.value)
    cal = tiny_bundle.info.metrics["calibration"]
    assert cal["holdout_false_alarm_rate"] <= 0.25
    assert cal["synthetic_image_auroc"] > 0.7
    assert tiny_bundle.info.map_scale["high"] > tiny_bundle.info.map_scale["low"]


def test_model_file_round_trip_gives_identical_scores(tiny_bundle, tmp_path, parts_dir):
    path = tiny_bundle.save(tmp_path / "m.inspector")
    assert [p.name for p in tmp_path.iterdir()] == ["m.inspector"]  # no temp file left behind
    loaded = ModelBundle.load(path)
    assert loaded.info.to_dict() == tiny_bundle.info.to_dict()
    images = [read_image(p) for p in list_images(parts_dir)[:6]]
    a = [p.score for p in Predictor(tiny_bundle, "cpu").predict_batch(images)]
    b = [p.score for p in Predictor(loaded, "cpu").predict_batch(images)]
    assert a == b


def test_broken_model_files_give_clear_errors(tiny_bundle, tmp_path):
    path = tiny_bundle.save(tmp_path / "m.inspector")
    truncated = tmp_path / "t.inspector"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="t.inspector"):
        ModelBundle.load(truncated)
    with pytest.raises(ModelFileError, match="not found"):
        ModelBundle.load(tmp_path / "missing.inspector")


def test_cancel_stops_training_and_resume_continues_from_the_checkpoint(parts_dir, tmp_path):
    files = list_images(parts_dir)
    config = TrainConfig(method="ganomaly", image_size=32, epochs=3, batch_size=8, device="cpu", params={"width": 8, "nz": 16})
    checkpoint = tmp_path / "run.ckpt"
    cancel = CancelToken()
    seen = []

    def on_event(e):
        if isinstance(e, SampleReconstructions):
            seen.append(e.epoch)
            cancel.cancel()  # stop right after the first epoch's checkpoint

    with pytest.raises(Cancelled):
        Trainer(config, on_event, cancel, checkpoint).fit(files)
    assert seen == [1] and checkpoint.is_file()

    epochs = []
    Trainer(config, lambda e: epochs.append(e.epoch) if isinstance(e, TrainProgress) and e.phase == "train" else None,
            checkpoint_path=checkpoint).fit(files)
    assert min(epochs) == 2 and max(epochs) == 3
    assert not checkpoint.exists()  # a finished run removes its checkpoint


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(parts_dir, tmp_path):
    """seg-skip-ganomaly paints random defects every step: the random state must travel in the checkpoint."""
    files = list_images(parts_dir)
    config = TrainConfig(method="seg-skip-ganomaly", image_size=32, epochs=2, batch_size=8, device="cpu",
                         params={"width": 4, "head_width": 4})
    whole = Trainer(config).fit(files).model.state_dict()
    checkpoint, cancel = tmp_path / "run.ckpt", CancelToken()
    with pytest.raises(Cancelled):
        Trainer(config, lambda e: cancel.cancel() if isinstance(e, SampleReconstructions) else None, cancel, checkpoint).fit(files)
    torch.manual_seed(123)  # whatever the process did in between
    resumed = Trainer(config, checkpoint_path=checkpoint).fit(files).model.state_dict()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_unreadable_training_images_are_skipped_and_reported(parts_dir, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG broken")
    config = TrainConfig(method="ganomaly", image_size=32, epochs=1, batch_size=8, device="cpu", params={"width": 8, "nz": 16})
    bundle = Trainer(config).fit(list_images(parts_dir)[:12] + [bad])
    assert bundle.info.training["skipped"] == [[str(bad), "not a decodable image (corrupt, truncated or unsupported format)"]]


def test_registry_versions_resolve_rename_delete(tiny_bundle, tmp_path):
    reg = ModelRegistry(tmp_path / "models")
    assert reg.add(tiny_bundle, "line-a").version == 1
    second = reg.add(tiny_bundle, "line-a", parent="line-a@v1")
    assert second.version == 2 and second.info.parent == "line-a@v1"
    assert reg.resolve("line-a") == second.path
    assert reg.resolve("line-a@v1").name == "v1.inspector"
    assert [e.version for e in reg.versions("line-a")] == [1, 2]
    reg.rename("line-a", "line-b")
    assert reg.names() == ["line-b"] and reg.latest("line-b").info.name == "line-b"
    assert reg.delete("line-b", 1) == 1 and [e.version for e in reg.versions("line-b")] == [2]
    reg.delete("line-b")
    assert reg.names() == []
    with pytest.raises(RegistryError):
        reg.resolve("line-b")
    with pytest.raises(ModelRefError):
        reg.add(tiny_bundle, "bad name/with slash")


def test_registry_adds_a_new_version_with_a_threshold_set_by_hand(tiny_bundle, tmp_path, parts_dir):
    reg = ModelRegistry(tmp_path / "models")
    first = reg.add(tiny_bundle, "line")
    loaded = reg.load("line@v1")
    entry = reg.add_threshold_version(loaded, 0.123, {"false_alarm_rate": 0.01}, dataset="parts")
    assert (entry.name, entry.version, entry.info.parent) == ("line", 2, "line@v1")
    t = entry.info.threshold
    assert (t.value, t.method, t.stats) == (0.123, "manual", {"false_alarm_rate": 0.01})
    assert t.params == {"previous": first.info.threshold.to_dict(), "dataset": "parts"}
    assert "was" in entry.info.notes and reg.resolve("line") == entry.path
    assert reg.versions("line")[0].info.threshold == first.info.threshold  # the version it came from is untouched
    again = reg.load("line@v2")
    assert again.info.threshold == t and again.info.config == first.info.config
    images = [read_image(p) for p in list_images(parts_dir)[:3]]
    same = [p.score for p in Predictor(again, "cpu").predict_batch(images)]
    assert same == [p.score for p in Predictor(loaded, "cpu").predict_batch(images)]  # the same weights
    elsewhere = reg.add_threshold_version(again, 0.2, name="line-copy")
    assert (elsewhere.name, elsewhere.version, elsewhere.info.parent) == ("line-copy", 1, "line@v2")
    unregistered = ModelBundle.load(tiny_bundle.save(tmp_path / "loose.inspector"))
    with pytest.raises(RegistryError, match="needs a name"):
        reg.add_threshold_version(unregistered, 0.3)
