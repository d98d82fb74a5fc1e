"""Projector and REPA loss: value on hand-made cases, multi-teacher mean, errors, gradients."""
import pytest
import torch
from torch import nn

from gear.models.align import Projector, REPALoss, patch_cosine
from gear.registry import ALIGN_LOSSES


def _loss(teachers=None, weight=1.0, D=16):
    torch.manual_seed(0)
    return REPALoss(hidden_dim=D, teachers=teachers or {'a': 8}, projector_hidden_dim=32,
                    loss_weight=weight)


def _orthogonal_to(z):
    """A random (B, N, C) tensor orthogonal to z at every patch (Gram-Schmidt)."""
    v = torch.randn_like(z)
    return v - (v * z).sum(-1, keepdim=True) / (z * z).sum(-1, keepdim=True) * z  # (B, N, C)


def test_projector_shapes_and_layers():
    proj = Projector(16, 24, hidden_dim=2048)
    assert proj(torch.randn(2, 5, 16)).shape == (2, 5, 24)
    linears = [m for m in proj.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 2048), (2048, 2048),
                                                                  (2048, 24)]
    assert sum(isinstance(m, nn.SiLU) for m in proj.modules()) == 2
    assert all(p.requires_grad for p in proj.parameters())


def test_patch_cosine_hand_made():
    a = torch.tensor([[[1., 0.], [1., 1.], [0., 2.]]])  # (1, 3, 2)
    b = torch.tensor([[[3., 0.], [-1., -1.], [5., 0.]]])  # (1, 3, 2)
    torch.testing.assert_close(patch_cosine(a, b), torch.tensor([[1., -1., 0.]]))


@pytest.mark.parametrize('weight', [1.0, 0.5])
def test_aligned_is_minus_weight_orthogonal_is_zero(weight):
    loss_fn = _loss(weight=weight)
    hidden = torch.randn(2, 6, 16)
    z = loss_fn.projectors['a'](hidden).detach()  # (B, N, C)
    loss, metrics = loss_fn(hidden, {'a': 3.0 * z})  # same direction, another scale
    torch.testing.assert_close(loss, torch.tensor(-weight))
    torch.testing.assert_close(metrics['cos/a'], torch.tensor(1.0))
    loss, metrics = loss_fn(hidden, {'a': _orthogonal_to(z)})
    torch.testing.assert_close(loss, torch.tensor(0.0), atol=1e-5, rtol=0)


def test_multi_teacher_mean_and_separate_metrics():
    loss_fn = _loss(teachers={'dino': 8, 'clip': 12}, weight=2.0)
    assert set(loss_fn.projectors) == {'dino', 'clip'}
    hidden = torch.randn(2, 6, 16)
    z_dino = loss_fn.projectors['dino'](hidden).detach()
    z_clip = loss_fn.projectors['clip'](hidden).detach()
    loss, metrics = loss_fn(hidden, {'dino': z_dino, 'clip': _orthogonal_to(z_clip)})
    torch.testing.assert_close(loss, torch.tensor(2.0 * (-1.0 + 0.0) / 2), atol=1e-5, rtol=0)
    assert set(metrics) == {'cos/dino', 'cos/clip'}
    assert all(not m.requires_grad for m in metrics.values())
    assert loss.requires_grad


def test_shape_mismatch_names_both_shapes():
    loss_fn = _loss()
    with pytest.raises(ValueError, match=r'\(2, 5, 8\).*\(2, 6, 16\)'):
        loss_fn(torch.randn(2, 6, 16), {'a': torch.randn(2, 5, 8)})
    with pytest.raises(ValueError):
        loss_fn(torch.randn(2, 6, 16), {'a': torch.randn(2, 6, 9)})
    with pytest.raises(KeyError, match='a'):
        loss_fn(torch.randn(2, 6, 16), {'b': torch.randn(2, 6, 8)})


def test_gradient_reaches_hidden_and_projector_not_target():
    loss_fn = ALIGN_LOSSES.build(dict(type='REPALoss', hidden_dim=16, teachers={'a': 8},
                                      projector_hidden_dim=32))
    hidden = torch.randn(2, 6, 16, requires_grad=True)
    target = torch.randn(2, 6, 8, requires_grad=True)
    loss, _ = loss_fn(hidden, {'a': target})
    loss.backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0
    for name, p in loss_fn.named_parameters():
        assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
    assert target.grad is None  # stop-gradient on the teacher side
    assert any(k.startswith('projectors.a.') for k in loss_fn.state_dict())
