"""bfloat16 training, by default, on a CPU that has bfloat16 instructions (TrainConfig.bf16): steps
run in bfloat16, the weights and the model file stay float32, the model scores as usual and its
training details say so. Where the CPU lacks them (pretended here either way: torch emulates
bfloat16 on any CPU) the run trains in float32, as with ``bf16=False``."""

from __future__ import annotations

import math

import pytest
import torch

from inspector.data.images import list_images
from inspector.engine.trainer import TrainConfig, Trainer, TrainNotice

TINY = {"method": "ganomaly", "image_size": 32, "epochs": 2, "batch_size": 8, "device": "cpu", "params": {"width": 8, "nz": 16}}


@pytest.mark.parametrize("bf16", [False, True])
def test_bf16_training_steps_run_in_bfloat16_and_the_weights_stay_float32(parts_dir, bf16, monkeypatch):
    monkeypatch.setattr("inspector.engine.trainer.cpu_bf16", lambda: True)
    seen: set[torch.dtype] = set()

    def record(module, inputs, output) -> None:
        if module.training and torch.is_grad_enabled():
            seen.add(output.dtype)

    original = Trainer._build_model

    def build(self):
        model = original(self)
        next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).register_forward_hook(record)
        return model

    config = TrainConfig(**TINY) if bf16 else TrainConfig(**TINY, bf16=False)  # on by default
    trainer = Trainer(config)
    trainer._build_model = build.__get__(trainer)
    bundle = trainer.fit(list_images(parts_dir))
    assert seen == ({torch.bfloat16} if bf16 else {torch.float32})
    assert all(v.dtype == torch.float32 for v in bundle.model.state_dict().values() if v.is_floating_point())
    assert math.isfinite(bundle.info.threshold.value)
    assert bundle.info.training["precision"] == ("bfloat16 mixed" if bf16 else "float32")


def test_where_the_cpu_lacks_bf16_the_default_trains_in_float32_without_a_warning(parts_dir, monkeypatch):
    monkeypatch.setattr("inspector.engine.trainer.cpu_bf16", lambda: False)
    notices = []
    trainer = Trainer(TrainConfig(**TINY), on_event=lambda e: notices.append(e) if isinstance(e, TrainNotice) else None)
    bundle = trainer.fit(list_images(parts_dir))
    assert bundle.info.training["config"]["bf16"] and bundle.info.training["precision"] == "float32"
    assert notices == []


def test_a_method_that_does_not_take_bf16_trains_in_float32_on_such_a_cpu(parts_dir, monkeypatch):
    """BiGAN (``AnomalyModel.bf16 = False``) keeps float32 whatever the config says."""
    monkeypatch.setattr("inspector.engine.trainer.cpu_bf16", lambda: True)
    config = TrainConfig(method="bigan", image_size=32, epochs=1, batch_size=8, device="cpu",
                         params={"width": 8, "nz": 16, "critic_hidden": 32})
    bundle = Trainer(config).fit(list_images(parts_dir))
    assert config.bf16 and bundle.info.training["precision"] == "float32"
