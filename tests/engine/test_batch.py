"""global_batch_size is the one batch knob: each rank loads global / world size."""
import pytest
import torch
from mmengine.model import BaseModel

from gear.engine.batch import per_rank_batch, rank_dataloader_cfg
from gear.engine.config_check import ConfigError


@pytest.mark.parametrize('global_batch, world, per_rank', [
    (256, 1, 256), (256, 8, 32), (256, 32, 8), (32, 2, 16)])
def test_the_per_rank_batch_is_global_over_world_size(global_batch, world, per_rank):
    assert per_rank_batch(global_batch, world) == per_rank


@pytest.mark.parametrize('global_batch, world, message', [
    (256, 3, r'^global_batch_size: 256 does not divide over 3 ranks.* 255 or 258'),
    (2, 4, r'^global_batch_size: 2 does not divide over 4 ranks'),
    (0, 1, r'^global_batch_size: 0; '),
    (8.0, 1, r'^global_batch_size: 8\.0; ')])
def test_a_global_batch_that_does_not_divide_is_a_config_error(global_batch, world, message):
    with pytest.raises(ConfigError, match=message):
        per_rank_batch(global_batch, world)


def test_the_dataloader_config_gets_the_rank_batch_and_is_not_changed():
    loader = dict(num_workers=0, dataset=dict(type='X'))
    assert rank_dataloader_cfg(loader, 64, 4) == dict(loader, batch_size=16)
    assert 'batch_size' not in loader
    assert rank_dataloader_cfg(loader, None, 4) is loader  # no global_batch_size: as given


class _Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)

    def forward(self, x, mode='loss'):
        return dict(loss=self.linear(x).sum())


def _runner(tmp_path, global_batch_size):
    from gear.engine.runner import GearRunner
    loader = dict(dataset=dict(type='FashionMNIST', data_root='/nonexistent'),
                  sampler=dict(type='DefaultSampler', shuffle=False))  # built lazily: never here
    return GearRunner(model=_Toy(), work_dir=str(tmp_path), train_dataloader=loader,
                      train_cfg=dict(by_epoch=False, max_iters=1),
                      optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                      default_hooks=dict(logger=None, checkpoint=None),
                      cfg=dict(global_batch_size=global_batch_size), default_scope='gear')


@pytest.mark.parametrize('world', [1, 2])
def test_the_runner_gives_its_train_dataloader_the_rank_batch(tmp_path, monkeypatch, world):
    import mmengine.runner.runner as mm_runner
    monkeypatch.setattr(mm_runner, 'get_dist_info', lambda: (0, world))  # as under torchrun
    runner = _runner(tmp_path, 12)
    assert runner.world_size == world
    assert runner._train_dataloader['batch_size'] == 12 // world


def test_the_runner_refuses_a_global_batch_that_does_not_divide(tmp_path, monkeypatch):
    import mmengine.runner.runner as mm_runner
    monkeypatch.setattr(mm_runner, 'get_dist_info', lambda: (0, 2))
    with pytest.raises(ConfigError, match=r'^global_batch_size: 7 does not divide over 2 ranks'):
        _runner(tmp_path, 7)
