"""IndexBackpropQuantizer: inner-product distances, index backpropagation, IBQ's losses, eval."""
import torch
import torch.nn.functional as F

from gear.models.quantizers import IndexBackpropQuantizer, QuantizerOutput, entropy_regularizer
from gear.registry import QUANTIZERS


def _quantizer(K=16, C=4, **kwargs):
    torch.manual_seed(0)
    return IndexBackpropQuantizer(codebook_size=K, embed_dim=C, **kwargs)


def _flat(z):
    b, c, h, w = z.shape
    return z.permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, L, C)


def test_registered_and_init():
    q = QUANTIZERS.build(dict(type='IndexBackpropQuantizer', codebook_size=1024, embed_dim=16))
    assert isinstance(q, IndexBackpropQuantizer)
    assert q.codebook_size == 1024 and q.embed_dim == 16
    # IBQ keeps nn.Embedding's normal(0, 1) init (not VQ's uniform(-1/K, 1/K))
    std = q.embedding.weight.std().item()
    assert 0.95 < std < 1.05, std


def test_distance_is_negative_inner_product_and_differentiable():
    q = _quantizer()
    z = torch.randn(2, 4, 3, 5, requires_grad=True)
    out = q(z)
    assert isinstance(out, QuantizerOutput)
    assert out.d.shape == (2, 15, 16) and out.indices.shape == (2, 3, 5)
    assert out.indices.dtype == torch.long
    torch.testing.assert_close(out.d, -_flat(z) @ q.embedding.weight.T)  # no normalisation
    assert torch.equal(out.indices.reshape(2, 15), out.d.argmin(-1))
    # the soft read-out's gradient reaches the encoder output and the codebook
    g_z, g_e = torch.autograd.grad((-out.d / 0.1).softmax(-1)[..., 0].sum(), (z, q.embedding.weight))
    assert g_z.abs().sum() > 0 and g_e.abs().sum() > 0


def test_index_backpropagation_straight_through():
    """z_q is the hard code in value; its gradient is that of IBQ's ``(hard - sg(p) + p) @ E``,
    reaching z and the codebook through the softmax posterior."""
    q = _quantizer(K=8, C=4)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = q(z)
    weight = q.embedding.weight
    assert torch.equal(out.z_q, weight[out.indices].permute(0, 3, 1, 2))
    g = torch.randn_like(out.z_q)
    g_z, g_e = torch.autograd.grad((out.z_q * g).sum(), (z, weight))
    assert g_z.abs().sum() > 0 and g_e.abs().sum() > 0
    # IBQ's formulation, by hand
    logits = _flat(z) @ weight.T  # (B, L, K)
    soft = logits.softmax(-1)
    hard = F.one_hot(logits.argmax(-1), 8).float()
    z_q_ref = (hard - soft.detach() + soft) @ weight  # (B, L, C)
    ref_z, ref_e = torch.autograd.grad((z_q_ref * _flat(g)).sum(), (z, weight))
    torch.testing.assert_close(g_z, ref_z)
    torch.testing.assert_close(g_e, ref_e)


def test_quant_loss_terms_by_hand_and_their_gradients():
    q = _quantizer(K=64, C=4, beta=0.25, entropy_loss_ratio=0.0)  # 18 positions: most codes unused
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = q(z)
    assert set(out.losses) == {'loss_index_backprop', 'loss_commit', 'loss_codebook'}
    weight = q.embedding.weight
    z_hard = weight[out.indices.reshape(2, 9)]  # (B, L, C)
    mse = torch.mean((z_hard - _flat(z)) ** 2)
    # IBQ: mean((z_q - z)^2) + mean((sg(z_q2) - z)^2) + beta * mean((z_q2 - sg(z))^2)
    torch.testing.assert_close(out.losses['loss_index_backprop'], mse)
    torch.testing.assert_close(out.losses['loss_commit'], mse)
    torch.testing.assert_close(out.losses['loss_codebook'], 0.25 * mse)
    # commitment moves z only, the codebook term the codebook only, the index-backprop term both
    g_z, g_e = torch.autograd.grad(out.losses['loss_commit'], (z, weight), allow_unused=True,
                                   retain_graph=True)
    assert g_z.abs().sum() > 0 and (g_e is None or g_e.abs().sum() == 0)
    g_z, g_e = torch.autograd.grad(out.losses['loss_codebook'], (z, weight), allow_unused=True,
                                   retain_graph=True)
    assert (g_z is None or g_z.abs().sum() == 0) and g_e.abs().sum() > 0
    g_z, g_e = torch.autograd.grad(out.losses['loss_index_backprop'], (z, weight))
    assert g_z.abs().sum() > 0 and g_e.abs().sum() > 0
    # it reaches codes other than the chosen ones (through the softmax posterior)
    unused = torch.ones(64, dtype=torch.bool)
    unused[out.indices.unique()] = False
    assert g_e[unused].abs().sum(-1).gt(0).all()


def test_entropy_loss_is_ibq_entropy_of_logits():
    q = _quantizer(K=8, C=4)  # defaults: ratio 0.05, temperature 0.01
    z = torch.randn(2, 4, 3, 3) * 0.05
    out = q(z)
    torch.testing.assert_close(out.losses['loss_entropy'],
                               0.05 * entropy_regularizer(out.d, 0.01))
    # IBQ's compute_entropy_loss on logits = <z, e>: softmax(logits / T), eps 1e-5
    logits = (_flat(z) @ q.embedding.weight.T).reshape(-1, 8) / 0.01
    probs = logits.softmax(-1)
    sample = -(probs * F.log_softmax(logits + 1e-5, -1)).sum(-1).mean()
    avg = probs.mean(0)
    expected = sample + (avg * torch.log(avg + 1e-5)).sum()
    torch.testing.assert_close(out.losses['loss_entropy'], 0.05 * expected)


def test_embed_matches_forward_and_metrics():
    q = _quantizer(K=32, C=8)
    out = q(torch.randn(3, 8, 4, 4))
    torch.testing.assert_close(q.embed(out.indices), out.z_q)
    assert set(out.metrics) == {'usage', 'perplexity', 'entropy'}
    used = out.indices.unique().numel()
    torch.testing.assert_close(out.metrics['usage'], torch.tensor(used / 32))


def test_float32_under_autocast():
    q = _quantizer(K=32, C=8)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = q(torch.randn(2, 8, 4, 4).bfloat16())
    assert out.d.dtype == torch.float32 and out.z_q.dtype == torch.float32


def test_losses_only_in_training_mode(monkeypatch):
    """Eval mode (frozen tokenizer, validation) has no losses and never calls the entropy
    regulariser (a collective across ranks)."""
    import gear.models.quantizers.index_backprop as ibq
    calls = []
    real = ibq.entropy_regularizer
    monkeypatch.setattr(ibq, 'entropy_regularizer', lambda *a, **k: calls.append(1) or real(*a, **k))
    q = _quantizer(K=32, C=8)
    z = torch.randn(2, 8, 4, 4)
    assert set(q.train()(z).losses) == {'loss_index_backprop', 'loss_commit', 'loss_codebook',
                                        'loss_entropy'}
    assert len(calls) == 1
    out = q.eval()(z)
    assert out.losses == {} and len(calls) == 1
    assert out.indices.shape == (2, 4, 4) and out.d.shape == (2, 16, 32)  # the read-outs stay
