"""BiGAN/ALI with a Wasserstein critic: what is its own (the critic, the penalty, sampling)."""

import torch

from inspector.models import create_model
from tests.test_method_contract import BIGAN


def test_the_critic_has_no_batch_norm_and_samples_are_repeatable():
    model = create_model("bigan", image_size=32, channels=1, **BIGAN)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.critic.modules())
    model.train()
    a = model.sample(4, torch.Generator().manual_seed(7))
    b = model.sample(4, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and model.training  # eval mode only while sampling
    assert a.shape == (4, 1, 32, 32) and a.abs().max() <= 1


def test_the_gradient_penalty_is_near_zero_for_a_unit_gradient_critic():
    from inspector.models.bigan.loss import gradient_penalty

    class Linear(torch.nn.Module):  # value = <w, (x, z)> with |w| = 1: gradient norm exactly 1
        def forward(self, x, z):
            flat = torch.cat([x.flatten(1), z], dim=1)
            return flat.sum(1) / flat.shape[1] ** 0.5, flat

    x, z = torch.randn(4, 1, 4, 4), torch.randn(4, 3)
    assert gradient_penalty(Linear(), x, z, torch.randn_like(x), torch.randn_like(z)).item() < 1e-10
