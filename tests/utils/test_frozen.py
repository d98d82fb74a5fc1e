"""Frozen nets: out of checkpoints, always eval, gradients only pass through."""
import torch
from torch import nn

from gear.utils.frozen import FrozenNet, frozen


class Teacher(FrozenNet):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
        self.freeze_()

    def forward(self, x):
        return self.net(x)


class Owner(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 3)
        self.teacher = Teacher()


def test_frozen_net_is_not_in_the_owner_checkpoint_and_loads_strictly():
    owner = Owner()
    sd = owner.state_dict()
    assert set(sd) == {'head.weight', 'head.bias'}
    weights = owner.teacher.net[0].weight.clone()
    sd['teacher.net.0.weight'] = torch.zeros(3, 3)  # stale teacher weights in an old file
    owner.load_state_dict(sd, strict=True)
    assert torch.equal(owner.teacher.net[0].weight, weights)  # ignored, not loaded


def test_frozen_net_stays_in_eval_and_passes_gradients():
    owner = Owner().train()
    assert not owner.teacher.training
    x = torch.randn(4, 3, requires_grad=True)
    torch.testing.assert_close(owner.teacher(x), owner.teacher(x))  # no dropout
    owner.teacher(x).sum().backward()
    assert x.grad is not None and owner.teacher.net[0].weight.grad is None


def test_frozen_context_restores_flags_and_buffers():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).train()
    stats = net[1].running_mean.clone()
    x = torch.randn(8, 3, requires_grad=True)
    with frozen(net):
        net(x).sum().backward()
    assert x.grad is not None and net[0].weight.grad is None
    assert torch.equal(net[1].running_mean, stats) and net[1].num_batches_tracked == 0
    assert all(p.requires_grad for p in net.parameters()) and net.training
    with frozen(net, eval_mode=True):
        assert not net.training
    assert net.training
