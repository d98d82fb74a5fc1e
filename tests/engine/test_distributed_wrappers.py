"""The per-module wrappers in one process (a world-size-1 gloo group): handles live outside the
module tree, phases run through them, and ZeRO-3 is refused for multi-module models."""
import copy

import pytest
import torch
import torch.distributed as dist
from mmengine.logging import MessageHub
from mmengine.model import is_model_wrapper
from mmengine.optim import build_optim_wrapper
from torch.nn.parallel import DistributedDataParallel

from gear.engine.distributed import GearDistributedDataParallel, average_over_ranks
from gear.engine.zero import GearDeepSpeedWrapper
from gear.registry import MODELS

from ..models.test_tokenizer_warmup import OPTIM, TINY



@pytest.fixture(scope='module')
def process_group(tmp_path_factory):
    if dist.is_initialized():
        pytest.skip('a process group is already initialised in this session')
    store = tmp_path_factory.mktemp('pg') / 'store'
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def build():
    torch.manual_seed(0)
    MessageHub.get_instance('gear-wrappers').update_info('iter', 0)
    return MODELS.build(TINY).train()


def data(n=2):
    g = torch.Generator().manual_seed(1)
    return dict(img=torch.rand(n, 3, 16, 16, generator=g) * 2 - 1,
                label=torch.zeros(n, dtype=torch.long))


def test_ddp_handles_stay_outside_the_module_tree(process_group):
    model = build()
    keys, params = list(model.state_dict()), [id(p) for p in model.parameters()]
    wrapped = GearDistributedDataParallel(model)
    assert is_model_wrapper(wrapped)  # so the runner saves wrapped.module's state dict
    assert list(model.state_dict()) == keys and [id(p) for p in model.parameters()] == params
    assert not any(k.startswith('module.') for k in model.state_dict())
    for name in ('tokenizer', 'discriminator'):
        handle = model.train_module(name)
        assert isinstance(handle, DistributedDataParallel) and handle.module is getattr(model, name)


def test_one_process_ddp_step_equals_the_unwrapped_step(process_group):
    plain, wrapped_model = build(), build()
    wrapped = GearDistributedDataParallel(wrapped_model)
    logs_plain = plain.train_step(data(), build_optim_wrapper(plain, copy.deepcopy(OPTIM)))
    logs_wrapped = wrapped.train_step(data(), build_optim_wrapper(wrapped, copy.deepcopy(OPTIM)))
    assert logs_plain.keys() == logs_wrapped.keys()
    for k in logs_plain:
        assert torch.allclose(logs_plain[k], logs_wrapped[k]), k
    for (k, a), b in zip(plain.state_dict().items(), wrapped_model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_average_over_ranks_keeps_types(process_group):
    logs = dict(a=torch.tensor(2.0), b=3.0, c=torch.ones(3))
    out = average_over_ranks(logs)
    assert torch.is_tensor(out['a']) and out['a'].item() == 2.0
    assert out['b'] == 3.0 and out['c'] is logs['c']


def test_zero3_is_refused_for_a_model_with_frozen_calls_of_trainable_modules():
    with pytest.raises(ValueError, match='zero_stage=3.*TokenizerWarmup.*zero2'):
        GearDeepSpeedWrapper(build(), zero_stage=3)
