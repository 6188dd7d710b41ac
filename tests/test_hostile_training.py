"""Hostile and unlucky training: bad numbers, a loss that turns NaN, a kill during the save, a
checkpoint of another run or a corrupt one, stale temp files, bad names, and a real kill -9.

Every case asserts the fix: one clear line, nothing written where nothing may be, and a run
that resumes ends with the weights of one that was never interrupted."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from inspector.cli import build_parser
from inspector.cli.train import train_config
from inspector.data.datasets import open_dataset
from inspector.data.images import list_images
from inspector.engine.bundle import ModelBundle
from inspector.engine.events import CancelToken, Cancelled, TrainProgress
from inspector.engine.modelref import ModelRefError
from inspector.engine.registry import ModelRegistry
from inspector.engine.threshold import from_good_scores, with_defects
from inspector.engine.trainer import (
    SampleReconstructions,
    TrainConfig,
    TrainConfigError,
    Trainer,
    TrainingDiverged,
    TrainNotice,
)
from inspector.atomic import remove_stale_temp_files
from inspector.engine.workflow import STALE_TEMP_S, TrainingBusy, checkpoint_path, checkpoints_dir, run_lock, train_dataset
from inspector.models import create_model
from inspector.models.autoencoder import Model as _Autoencoder
from inspector.models.registry import _METHODS

SMALL = {"width": 8, "nz": 16}
REPO = Path(__file__).resolve().parents[1]


def small_config(**overrides) -> TrainConfig:
    values = dict(method="ganomaly", image_size=32, epochs=2, batch_size=8, device="cpu", params=dict(SMALL))
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture
def parts(parts_dir, tmp_path):
    """A private copy of 16 good parts (tests that change a dataset must not change the shared one)."""
    folder = tmp_path / "parts"
    folder.mkdir()
    for p in list_images(parts_dir)[:16]:
        shutil.copy2(p, folder / p.name)
    return folder


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


class Recorder(list):
    def __call__(self, event) -> None:
        self.append(event)

    def notices(self, kind: str | None = None) -> list[TrainNotice]:
        return [e for e in self if isinstance(e, TrainNotice) and (kind is None or e.kind == kind)]

    def train_epochs(self) -> list[int]:
        return sorted({e.epoch for e in self if isinstance(e, TrainProgress) and e.phase == "train"})


# --- a method whose weights overflow, as a too-high learning rate does ---------------------------
class Model(_Autoencoder):
    """The autoencoder, with its first weight set to infinity before step ``BLOW_UP_AT``:
    what an overflowing update does to a real network (its loss is NaN from then on)."""

    BLOW_UP_AT = 1  # steps done before it

    def training_step(self, batch, ctx):
        if ctx.step == self.BLOW_UP_AT:
            with torch.no_grad():
                next(self.parameters()).fill_(float("inf"))
        return super().training_step(batch, ctx)


@pytest.fixture
def diverging_method(monkeypatch):
    monkeypatch.setitem(_METHODS, "diverging", __name__)
    return "diverging"


# --- numbers -----------------------------------------------------------------------------------
def test_a_loss_that_turns_nan_stops_training_at_that_step_and_nothing_is_stored(diverging_method, parts, tmp_home):
    registry = ModelRegistry()
    events = Recorder()
    config = TrainConfig(method=diverging_method, image_size=32, epochs=5, batch_size=8, device="cpu")
    with pytest.raises(TrainingDiverged) as caught:
        train_dataset(open_dataset(parts), config, registry, "diverges", on_event=events)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("training diverged at epoch 2 step 2: loss ") and " is nan; lower the learning rate" in message
    assert events.train_epochs() == [1]  # stopped at the bad step, not after five epochs of garbage
    assert registry.names() == [] and files_in(registry.root) == []


def test_nan_and_out_of_range_method_params_are_refused_before_an_image_is_read(parts, tmp_home):
    with pytest.raises(TrainConfigError, match=r"param 'w_con'.*nan"):
        small_config(params={**SMALL, "w_con": float("nan")})
    config = small_config()
    config.params = {**SMALL, "nz": "abc"}  # changed after construction: fit checks again
    broken = parts / "zz-broken.png"
    broken.write_bytes(b"\x89PNG not really")
    events = Recorder()
    with pytest.raises(TrainConfigError, match=r"param 'nz'") as caught:
        Trainer(config, on_event=events, checkpoint_path=tmp_home / "run.ckpt").fit(list_images(parts))
    assert "\n" not in str(caught.value)
    assert events == []  # not even the unreadable image was reported: nothing was read
    assert not (tmp_home / "run.ckpt").exists()


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("epochs", -1, "epochs must be a whole number 0..10000"),
        ("epochs", 10**6, "epochs must be a whole number 0..10000"),
        ("batch_size", 0, "batch_size must be a whole number 1..4096"),
        ("image_size", 48, "image_size must be a power of two"),
        ("channels", 2, "channels must be 1"),
        ("false_alarm_rate", 5.0, "false_alarm_rate must be a number in (0, 0.5]"),
        ("false_alarm_rate", 0.0, "false_alarm_rate must be a number in (0, 0.5]"),
        ("holdout_fraction", 0.9, "holdout_fraction must be a number in (0, 0.5]"),
        ("threshold_mode", "max-of-test-set", "threshold_mode must be one of"),
        ("seed", -1, "seed must be a whole number 0.."),
        ("params", {"image_size": 64}, "param 'image_size' is a training setting"),
    ],
)
def test_bad_settings_are_refused_before_the_first_step_and_nothing_is_written(field, value, words, parts, tmp_home):
    with pytest.raises(TrainConfigError) as at_construction:
        small_config(**{field: value})
    assert words in str(at_construction.value)
    config = small_config()
    setattr(config, field, value)  # the GUI or retrain changing a field later: train_dataset checks again
    registry, events = ModelRegistry(), Recorder()
    with pytest.raises(TrainConfigError, match=re.escape(words)):
        train_dataset(open_dataset(parts), config, registry, "refused", on_event=events)
    assert events == [] and files_in(registry.root) == [] and files_in(checkpoints_dir()) == []


def test_calibration_refuses_non_finite_scores_and_rates():
    with pytest.raises(ValueError, match="1 of 3 held-out good scores are not finite"):
        from_good_scores([0.1, float("nan"), 0.3], 0.02)
    with pytest.raises(ValueError, match="defect scores are not finite"):
        with_defects([0.1, 0.2], [float("inf"), 0.9], "synthetic-f1", 0.05)
    with pytest.raises(ValueError, match=r"false_alarm_rate must be a number in \(0, 0.5\]"):
        from_good_scores([0.1, 0.2], 5)
    with pytest.raises(ValueError, match=r"max_false_alarm_rate must be a number in \(0, 0.5\]"):
        with_defects([0.1, 0.2], [0.9], "synthetic-f1", 0.0)


def test_a_model_whose_scores_are_nan_gets_no_threshold(tiny_bundle, parts_dir, tmp_home):
    """Calibration of a broken network (NaN weights, 0 epochs of fine-tuning) refuses, naming why."""
    broken = create_model("ganomaly", **tiny_bundle.info.config)
    broken.load_state_dict(tiny_bundle.model.state_dict())
    with torch.no_grad():
        next(broken.parameters()).fill_(float("nan"))
    params = {k: v for k, v in tiny_bundle.info.config.items() if k not in ("image_size", "channels")}
    config = TrainConfig(method="ganomaly", image_size=32, epochs=0, batch_size=8, device="cpu", params=params)
    with pytest.raises(ValueError, match="not finite|NaN"):
        Trainer(config).fit(list_images(parts_dir)[:16], init_from=ModelBundle(broken, tiny_bundle.info))


# --- names -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["/abs/path/model", "../outside", "x" * 300, "a/b"])
def test_a_bad_name_is_refused_before_training(name, parts, tmp_home, tmp_path):
    registry, events = ModelRegistry(), Recorder()
    with pytest.raises(ModelRefError, match="invalid model name") as caught:
        train_dataset(open_dataset(parts), small_config(), registry, name, on_event=events)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300
    assert events == [] and files_in(checkpoints_dir()) == [] and files_in(registry.root) == []
    assert not Path("/abs").exists() and not (tmp_path / "outside").exists()


# --- the lifecycle: kill during the save, resume, another run, a corrupt checkpoint ---------------
class FailingOnceRegistry(ModelRegistry):
    """A registry whose first save fails, as a kill or a full disk during the final save does."""

    failed = False

    def add(self, *args, **kwargs):
        if not self.failed:
            self.failed = True
            raise OSError(28, "No space left on device")
        return super().add(*args, **kwargs)


def test_a_failed_final_save_keeps_the_checkpoint_and_the_rerun_stores_the_same_model(parts, tmp_home, tmp_path):
    dataset, config = open_dataset(parts), small_config()
    flaky = FailingOnceRegistry()
    with pytest.raises(OSError, match="No space left"):
        train_dataset(dataset, config, flaky, "line", on_event=Recorder())
    kept = list(checkpoints_dir().glob("line-*.ckpt"))
    assert len(kept) == 1  # the whole training is still there

    events = Recorder()
    entry = train_dataset(dataset, config, flaky, "line", on_event=events)
    assert [n.message.split(" (")[0] for n in events.notices()] == ["resuming from epoch 2 of 2"]
    assert events.train_epochs() == []  # nothing trained twice
    assert entry.version == 1 and not kept[0].exists()  # removed only once the model was stored

    reference = train_dataset(dataset, config, ModelRegistry(tmp_path / "reference"), "line")
    assert_same_weights(entry.path, reference.path)


def test_a_run_on_other_data_or_settings_does_not_take_over_the_checkpoint(parts, parts_dir, tmp_home, tmp_path):
    """Same name, other data: its own checkpoint, its own epochs; the first run's checkpoint stays."""
    config = small_config(epochs=3)
    cancel = CancelToken()
    stop_after_first_epoch = lambda e: cancel.cancel() if isinstance(e, SampleReconstructions) else None  # noqa: E731
    with pytest.raises(Cancelled):
        train_dataset(open_dataset(parts), config, ModelRegistry(), "line", on_event=stop_after_first_epoch, cancel=cancel)
    first = list(checkpoints_dir().glob("line-*.ckpt"))
    assert len(first) == 1

    other = tmp_path / "other"
    other.mkdir()
    for p in list_images(parts_dir)[16:32]:
        shutil.copy2(p, other / p.name)
    events = Recorder()
    train_dataset(open_dataset(other), config, ModelRegistry(), "line", on_event=events)
    assert events.notices() == [] and events.train_epochs() == [1, 2, 3]
    assert first[0].is_file()  # the interrupted run can still resume

    events = Recorder()
    train_dataset(open_dataset(parts), small_config(epochs=3, seed=1), ModelRegistry(), "line", on_event=events)
    assert events.notices() == [] and events.train_epochs() == [1, 2, 3]  # other settings: a fresh run too


def test_a_checkpoint_of_another_run_at_the_same_path_is_reported_and_training_starts_over(parts, parts_dir, tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    config = small_config(epochs=3)
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        Trainer(config, lambda e: cancel.cancel() if isinstance(e, SampleReconstructions) else None, cancel, checkpoint).fit(
            list_images(parts_dir)[16:32]
        )
    events = Recorder()
    Trainer(config, events, checkpoint_path=checkpoint).fit(list_images(parts))
    [notice] = events.notices()
    assert notice.kind == "checkpoint-ignored"
    assert notice.message == f"checkpoint {checkpoint} belongs to another run (different data/settings); starting over"
    assert events.train_epochs() == [1, 2, 3]


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty"])
def test_a_corrupt_checkpoint_is_one_warning_and_training_starts_over(damage, parts, tmp_path):
    files, checkpoint = list_images(parts), tmp_path / "run.ckpt"
    config = small_config(epochs=3)
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        Trainer(config, lambda e: cancel.cancel() if isinstance(e, SampleReconstructions) else None, cancel, checkpoint).fit(files)
    data = checkpoint.read_bytes()
    damaged = {"truncated": data[: len(data) // 2], "random bytes": np.random.default_rng(0).bytes(len(data)), "empty": b""}[damage]
    checkpoint.write_bytes(damaged)

    events = Recorder()
    whole = Trainer(config, events, checkpoint_path=checkpoint).fit(files)
    [notice] = events.notices()
    assert notice.kind == "checkpoint-unreadable" and "\n" not in notice.message
    assert notice.message.startswith(f"checkpoint {checkpoint} is unreadable (") and notice.message.endswith("); starting over")
    assert "weights_only" not in notice.message
    assert events.train_epochs() == [1, 2, 3]
    uninterrupted = Trainer(config).fit(files)
    assert all(torch.equal(v, uninterrupted.model.state_dict()[k]) for k, v in whole.model.state_dict().items())


def test_the_very_same_run_started_twice_at_once_is_refused_and_the_first_keeps_its_checkpoint(parts, tmp_home):
    dataset, config = open_dataset(parts), small_config()
    mine = checkpoint_path("line", config, dataset)
    with run_lock(mine, "line"):  # the first run, holding its lock (as train_dataset does)
        mine.write_bytes(b"the first run's checkpoint")
        events = Recorder()
        with pytest.raises(TrainingBusy, match="'line' is being trained with these settings and data in another process"):
            train_dataset(dataset, config, ModelRegistry(), "line", on_event=events)
        assert events == [] and mine.read_bytes() == b"the first run's checkpoint"
        other = train_dataset(dataset, small_config(seed=3), ModelRegistry(), "line")  # other settings: side by side
        assert other.version == 1
    mine.unlink()
    assert train_dataset(dataset, config, ModelRegistry(), "line").version == 2  # the lock went with its holder
    assert [p.name for p in checkpoints_dir().iterdir()] == []


# --- stale temp files --------------------------------------------------------------------------
def test_stale_temp_files_are_cleaned_on_start_and_nothing_else(parts, tmp_home, tmp_path):
    registry = ModelRegistry()
    model_folder = registry.root / "line"
    model_folder.mkdir(parents=True)
    hour_ago = time.time() - 3600
    old = model_folder / ".v1.inspector.k2j4h5g6.tmp"  # a killed write, an hour ago
    claim = model_folder / ".claim-4242-7f3a.tmp"  # a version claim of a save killed an hour ago
    claim_write = model_folder / "..claim-4242-7f3a.tmp.ab12cd34.tmp"
    fresh = model_folder / ".active.zz99yy88.tmp"  # may be another process writing right now: stays
    mine = model_folder / "notes.tmp"  # not a temp name of ours: stays
    outside = tmp_path / ".v1.inspector.k2j4h5g6.tmp"  # not in the app's folders: stays
    for p in (old, claim, claim_write, fresh, mine, outside):
        p.write_bytes(b"x")
    for p in (old, claim, claim_write, outside):
        os.utime(p, (hour_ago, hour_ago))
    old_ckpt = checkpoints_dir() / ".line-0123456789abcdef.ckpt.a1b2c3d4.tmp"
    checkpoints_dir().mkdir(parents=True, exist_ok=True)
    old_ckpt.write_bytes(b"x")
    os.utime(old_ckpt, (hour_ago, hour_ago))

    train_dataset(open_dataset(parts), small_config(epochs=1), registry, "line")
    assert not old.exists() and not claim.exists() and not claim_write.exists() and not old_ckpt.exists()
    assert fresh.exists() and mine.exists() and outside.exists()


def test_the_run_s_own_checkpoint_temp_goes_at_once(tmp_path):
    own = tmp_path / ".line-0123456789abcdef.ckpt.a1b2c3d4.tmp"
    other = tmp_path / ".line-fedcba9876543210.ckpt.a1b2c3d4.tmp"  # another run, maybe writing now
    own.write_bytes(b"x")
    other.write_bytes(b"x")
    assert remove_stale_temp_files(tmp_path, STALE_TEMP_S, own_targets=["line-0123456789abcdef.ckpt"]) == [own]
    assert other.exists()


# --- a real kill -9 -------------------------------------------------------------------------------
def assert_same_weights(a: Path, b: Path) -> None:
    left, right = load_file(str(a)), load_file(str(b))
    assert left.keys() == right.keys()
    different = [k for k in left if not torch.equal(left[k], right[k])]
    assert different == [], f"{len(different)} tensors differ, e.g. {different[:3]}"


def _train_command(data: Path) -> list[str]:
    return [sys.executable, "-m", "inspector.cli", "train", str(data), "--method", "ganomaly", "--name", "drill", "--image-size", "32",
            "--epochs", "4", "--batch-size", "8", "--device", "cpu", "--param", "width=8", "--param", "nz=16"]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "INSPECTOR_HOME": str(home), "INSPECTOR_THREADS": "1", "PYTHONPATH": str(REPO)}


def test_kill_9_after_the_first_checkpoint_then_resume_ends_with_the_weights_of_an_uninterrupted_run(parts, tmp_path, tmp_home):
    killed_home, reference_home = tmp_path / "killed", tmp_path / "reference"
    proc = subprocess.Popen(_train_command(parts), env=_env(killed_home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = killed_home / "cache" / "checkpoints"
    deadline = time.monotonic() + 60
    try:
        while not list(checkpoints.glob("drill-*.ckpt")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "training ended before it could be killed"
        assert list(checkpoints.glob("drill-*.ckpt")), "no checkpoint within 60 s"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    resumed = subprocess.run(_train_command(parts), env=_env(killed_home), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"^resuming from epoch [1-4] of 4 ", resumed.stderr, re.M), resumed.stderr
    # the uninterrupted run, in this process (a third interpreter would cost ~10 s of imports):
    # the CLI's own parser and settings, one thread as in the subprocesses
    args = build_parser().parse_args(_train_command(parts)[3:])
    reference = train_dataset(open_dataset(parts, seed=args.seed), train_config(args), ModelRegistry(reference_home), "drill")

    assert_same_weights(killed_home / "data" / "models" / "drill" / "v1.inspector", reference.path)
    assert list(checkpoints.iterdir()) == []
    assert [p for p in killed_home.rglob("*.tmp")] == []


def test_settings_that_make_a_model_too_big_to_save_are_refused_before_any_work(tmp_home, parts_dir):
    """Each size within its bounds, together 3.4 GiB of weights: refused at once, not at the save."""
    import time

    from inspector.data.images import list_images
    from inspector.engine.trainer import TrainConfig, TrainConfigError, Trainer

    config = TrainConfig(method="ganomaly", image_size=256, epochs=1, batch_size=2, device="cpu",
                         params={"width": 128, "nz": 1024, "extra_layers": 2})
    started = time.monotonic()
    with pytest.raises(TrainConfigError, match="MB of weights, more than a model file may hold"):
        Trainer(config).fit(list_images(parts_dir))
    assert time.monotonic() - started < 10
