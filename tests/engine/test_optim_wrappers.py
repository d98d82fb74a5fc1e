"""GearAmpOptimWrapper (bf16 autocast on any device, no scaler) and gradient accumulation
(``accumulative_counts``) with GEAR's three optimizer groups."""
import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from torch import nn

import gear.engine  # noqa: F401
from gear.engine.optim_wrappers import GearAmpOptimWrapper
from gear.registry import MODELS

from ..models.test_gear_invariants import TINY_GEAR


def test_amp_wrapper_autocasts_on_cpu_and_steps():
    layer = nn.Linear(4, 4)
    wrapper = GearAmpOptimWrapper(torch.optim.SGD(layer.parameters(), lr=0.1),
                                  clip_grad=dict(max_norm=1.0))
    before = layer.weight.detach().clone()
    with wrapper.optim_context(layer):
        out = layer(torch.randn(2, 4))
        assert out.dtype == torch.bfloat16
        wrapper.update_params(out.float().square().mean())
    assert not torch.equal(layer.weight, before) and layer.weight.dtype == torch.float32
    state = wrapper.state_dict()
    wrapper.load_state_dict(dict(state, loss_scaler={'scale': 1.0}))  # an AmpOptimWrapper state
    fp32 = GearAmpOptimWrapper(torch.optim.SGD(layer.parameters(), lr=0.1), dtype='float32')
    with fp32.optim_context(layer):
        assert layer(torch.randn(2, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match="dtype='float16'.*AmpOptimWrapper"):
        GearAmpOptimWrapper(torch.optim.SGD(layer.parameters(), lr=0.1), dtype='float16')


def test_gradient_accumulation_with_three_groups():
    """accumulative_counts=2 for every group: nothing moves after the first micro-step (the
    gradients of all three groups are kept, also while a group is frozen in another phase),
    everything moves after the second, and the gradients are zeroed then."""
    torch.manual_seed(0)
    MessageHub.get_instance('gear-accumulation').update_info('iter', 0)
    model = MODELS.build(copy.deepcopy(TINY_GEAR)).train()
    group = dict(type='GearOptimWrapper', optimizer=dict(type='AdamW', lr=1e-2),
                 accumulative_counts=2, clip_grad=dict(max_norm=1.0))
    optim = build_optim_wrapper(model, dict(constructor='ModuleOptimWrapperConstructor',
                                            tokenizer=group, discriminator=group, prior=group))
    optim.initialize_count_status(model, 0, 4)
    gen = torch.Generator().manual_seed(1)

    def batch():
        return dict(img=torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1,
                    label=torch.tensor([3, 7]))

    def snapshot():
        return {name: {n: p.detach().clone() for n, p in getattr(model, name).named_parameters()}
                for name in ('tokenizer', 'discriminator', 'prior')}

    start = snapshot()
    model.train_step(batch(), optim)
    for name, params in snapshot().items():
        assert all(torch.equal(params[n], start[name][n]) for n in params), name
        grads = [p.grad for p in getattr(model, name).parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    model.train_step(batch(), optim)
    for name, params in snapshot().items():
        assert any(not torch.equal(params[n], start[name][n]) for n in params), name
        assert all(p.grad is None or p.grad.abs().sum() == 0
                   for p in getattr(model, name).parameters())
