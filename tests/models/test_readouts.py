"""Read-outs of the quantizer distances: hard argmin, soft softmax, straight-through ablation."""
import pytest
import torch
import torch.nn.functional as F

from gear.models.readouts import HardReadout, SoftReadout, StraightThroughReadout
from gear.registry import READOUTS


def _distances(B=2, L=5, K=7, seed=0):
    torch.manual_seed(seed)
    return (torch.rand(B, L, K) * 4).requires_grad_(True)  # (B, L, K), like 2 - 2 cos in [0, 4]


def test_registry_builds_all():
    for cfg, soft in [(dict(type='HardReadout'), False), (dict(type='SoftReadout', tau=0.05), True),
                      (dict(type='StraightThroughReadout', tau=0.1), True)]:
        readout = READOUTS.build(cfg)
        assert readout.returns_probs is soft and readout.is_soft is soft


def test_hard_is_argmin_without_gradient():
    d = _distances()
    idx = HardReadout()(d)
    assert idx.dtype == torch.long and idx.shape == (2, 5)
    assert torch.equal(idx, d.argmin(-1))
    assert not idx.requires_grad


def test_soft_rows_sum_to_one_and_gradient_reaches_d():
    d = _distances()
    probs = SoftReadout(tau=0.1)(d)
    assert probs.shape == (2, 5, 7) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 5))
    torch.testing.assert_close(probs, torch.softmax(-d / 0.1, -1))
    assert torch.equal(probs.argmax(-1), d.argmin(-1))  # closest code is the most probable
    (probs * torch.randn_like(probs)).sum().backward()
    assert d.grad is not None and d.grad.abs().sum() > 0


def test_soft_computes_in_float32_for_low_precision_d():
    d = _distances().detach().to(torch.bfloat16)
    probs = SoftReadout(tau=0.01)(d)
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs, torch.softmax(-d.float() / 0.01, -1))


def test_straight_through_forward_hard_backward_soft():
    d_st, d_soft = _distances(), _distances()
    weights = torch.randn(2, 5, 7)
    st = StraightThroughReadout(tau=0.1)(d_st)
    one_hot = F.one_hot(d_st.argmin(-1), 7).float()  # (B, L, K)
    assert torch.equal(st, one_hot)  # exactly, not approximately
    (st * weights).sum().backward()
    (SoftReadout(tau=0.1)(d_soft) * weights).sum().backward()
    assert torch.equal(d_st.grad, d_soft.grad)


@pytest.mark.parametrize('tau', [0, -0.1])
def test_tau_must_be_positive(tau):
    with pytest.raises(ValueError):
        SoftReadout(tau=tau)


def test_bad_shape_raises():
    with pytest.raises(ValueError, match=r'\(B, L, K\)'):
        HardReadout()(torch.rand(5, 7))
