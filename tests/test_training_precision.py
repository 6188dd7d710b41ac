"""bfloat16 training on a CPU that has bfloat16 instructions (TrainConfig.bf16): steps run in
bfloat16, the weights and the model file stay float32, and the model scores as usual."""

from __future__ import annotations

import math

import pytest
import torch

from inspector.data.images import list_images
from inspector.engine.device import cpu_bf16
from inspector.engine.trainer import TrainConfig, Trainer


@pytest.mark.parametrize("bf16", [False, True])
def test_bf16_training_steps_run_in_bfloat16_and_the_weights_stay_float32(parts_dir, bf16):
    if bf16 and not cpu_bf16():
        pytest.skip("this CPU has no bfloat16 instructions: the option trains in float32 there")
    seen: set[torch.dtype] = set()

    def record(module, inputs, output) -> None:
        if module.training and torch.is_grad_enabled():
            seen.add(output.dtype)

    original = Trainer._build_model

    def build(self):
        model = original(self)
        next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).register_forward_hook(record)
        return model

    config = TrainConfig(method="ganomaly", image_size=32, epochs=2, batch_size=8, device="cpu", bf16=bf16, params={"width": 8, "nz": 16})
    trainer = Trainer(config)
    trainer._build_model = build.__get__(trainer)
    bundle = trainer.fit(list_images(parts_dir))
    assert seen == ({torch.bfloat16} if bf16 else {torch.float32})
    assert all(v.dtype == torch.float32 for v in bundle.model.state_dict().values() if v.is_floating_point())
    assert math.isfinite(bundle.info.threshold.value)
