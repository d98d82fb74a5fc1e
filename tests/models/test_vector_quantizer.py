"""VectorQuantizer: straight-through, distances, gradients, loss values, entropy, embed."""
import math

import torch
import torch.nn.functional as F

from gear.models.quantizers import QuantizerOutput, VectorQuantizer
from gear.registry import QUANTIZERS


def _quantizer(K=16, C=4, **kwargs):
    torch.manual_seed(0)
    return VectorQuantizer(codebook_size=K, embed_dim=C, **kwargs)


def test_registered_and_init():
    q = QUANTIZERS.build(dict(type='VectorQuantizer', codebook_size=32, embed_dim=8))
    assert isinstance(q, VectorQuantizer)
    assert q.codebook_size == 32 and q.embed_dim == 8
    # LlamaGen's init: uniform(-1/K, 1/K) projected onto the unit sphere
    torch.testing.assert_close(q.embedding.weight.norm(dim=-1), torch.ones(32))


def test_straight_through_and_shapes():
    q = _quantizer()
    z = torch.randn(2, 4, 3, 5, requires_grad=True)
    out = q(z)
    assert isinstance(out, QuantizerOutput)
    assert out.z_q.shape == (2, 4, 3, 5) and out.indices.shape == (2, 3, 5)
    assert out.d.shape == (2, 15, 16) and out.indices.dtype == torch.long
    codes = F.normalize(q.embedding.weight, dim=-1)[out.indices].permute(0, 3, 1, 2)
    torch.testing.assert_close(out.z_q, codes)
    # z_q's gradient goes through the l2 normalisation of z; with l2_norm=False it is identity
    q_plain = _quantizer(l2_norm=False)
    z2 = torch.randn(2, 4, 3, 5, requires_grad=True)
    (grad, ) = torch.autograd.grad(q_plain(z2).z_q.sum(), z2)
    torch.testing.assert_close(grad, torch.ones_like(z2))
    # with l2_norm the gradient equals that of sum(normalize(z))
    (grad, ) = torch.autograd.grad(out.z_q.sum(), z)
    (expected, ) = torch.autograd.grad(F.normalize(z, dim=1).sum(), z)
    torch.testing.assert_close(grad, expected)


def test_distance_is_two_minus_two_cos_and_differentiable():
    q = _quantizer()
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = q(z)
    assert out.d.min() >= -1e-6 and out.d.max() <= 4 + 1e-6
    zf = F.normalize(z.permute(0, 2, 3, 1).reshape(2, 9, 4), dim=-1)  # (B, L, C)
    cos = zf @ F.normalize(q.embedding.weight, dim=-1).T  # (B, L, K)
    torch.testing.assert_close(out.d, 2 - 2 * cos, rtol=1e-5, atol=1e-5)
    assert torch.equal(out.indices.reshape(2, 9), out.d.argmin(-1))
    g_z, g_e = torch.autograd.grad((-out.d / 0.1).softmax(-1)[..., 0].sum(), (z, q.embedding.weight))
    assert g_z.abs().sum() > 0 and g_e.abs().sum() > 0


def test_loss_values_by_hand():
    # no normalisation, 2 codes in 1-D: e0 = 0, e1 = 1; z = 0.25 -> e0, z = 0.75 -> e1
    q = VectorQuantizer(2, 1, l2_norm=False, beta=0.25, entropy_loss_ratio=0.0, codebook_loss_weight=2.0)
    with torch.no_grad():
        q.embedding.weight.copy_(torch.tensor([[0.0], [1.0]]))
    z = torch.tensor([0.25, 0.75]).reshape(1, 1, 1, 2)
    out = q(z)
    assert out.indices.tolist() == [[[0, 1]]]
    torch.testing.assert_close(out.z_q, torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 2))
    torch.testing.assert_close(out.d, torch.tensor([[[0.0625, 0.5625], [0.5625, 0.0625]]]))
    assert set(out.losses) == {'loss_codebook', 'loss_commit'}  # ratio 0 omits the entropy key
    torch.testing.assert_close(out.losses['loss_codebook'], torch.tensor(2.0 * 0.0625))
    torch.testing.assert_close(out.losses['loss_commit'], torch.tensor(0.25 * 0.0625))
    # the codebook loss moves only the codebook, the commitment loss only z
    z = z.clone().requires_grad_(True)
    out = q(z)
    g_z, g_e = torch.autograd.grad(out.losses['loss_codebook'], (z, q.embedding.weight), allow_unused=True)
    assert (g_z is None or g_z.abs().sum() == 0) and g_e.abs().sum() > 0
    (g_z, ) = torch.autograd.grad(out.losses['loss_commit'], z)
    assert g_z.abs().sum() > 0


def test_entropy_loss_value_and_direction():
    # 4 orthogonal unit codes; positions sitting exactly on codes give near one-hot assignments
    K = 4
    q = VectorQuantizer(K, K, entropy_loss_ratio=0.5, entropy_temperature=0.01)
    with torch.no_grad():
        q.embedding.weight.copy_(torch.eye(K))
    spread = torch.eye(K).reshape(1, K, K, 1)  # position i on code i: (B, C, H, W)
    collapsed = torch.eye(K)[[0, 0, 0, 0]].T.reshape(1, K, K, 1)  # every position on code 0
    l_spread = q(spread).losses['loss_entropy']
    l_collapsed = q(collapsed).losses['loss_entropy']
    # one-hot samples: sample entropy ~0; batch entropy log 4 (spread) vs 0 (collapsed)
    torch.testing.assert_close(l_spread, torch.tensor(-0.5 * math.log(K)), atol=1e-3, rtol=0)
    torch.testing.assert_close(l_collapsed, torch.tensor(0.0), atol=1e-3, rtol=0)
    assert l_spread < l_collapsed
    out = q(spread)
    assert out.metrics['usage'] == 1.0
    torch.testing.assert_close(out.metrics['perplexity'], torch.tensor(float(K)))
    assert q(collapsed).metrics['usage'] == 0.25


def test_embed_matches_forward():
    q = _quantizer(K=32, C=8)
    out = q(torch.randn(3, 8, 4, 4))
    torch.testing.assert_close(q.embed(out.indices), out.z_q)


def test_float32_under_autocast():
    q = _quantizer(K=32, C=8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = q(torch.randn(2, 8, 4, 4).bfloat16())
    assert out.d.dtype == torch.float32 and out.z_q.dtype == torch.float32


def test_losses_only_in_training_mode(monkeypatch):
    """A frozen tokenizer (stage 2), validation and evaluation run the quantizer in eval mode:
    no losses, and the entropy regulariser (a collective across ranks) is never called."""
    import gear.models.quantizers.vector_quantizer as vq
    calls = []
    real = vq.entropy_regularizer
    monkeypatch.setattr(vq, 'entropy_regularizer', lambda *a, **k: calls.append(1) or real(*a, **k))
    q = _quantizer(K=32, C=8)
    z = torch.randn(2, 8, 4, 4)
    assert set(q.train()(z).losses) == {'loss_codebook', 'loss_commit', 'loss_entropy'}
    assert len(calls) == 1
    out = q.eval()(z)
    assert out.losses == {} and len(calls) == 1
    assert out.indices.shape == (2, 4, 4) and out.d.shape == (2, 16, 32)  # the read-outs stay
