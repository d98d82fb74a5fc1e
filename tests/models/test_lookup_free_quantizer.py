"""LookupFreeQuantizer: the factorised, chunked entropy equals the generic regulariser (value and
gradient), codes and indices, losses only in training, gradient of d reaches the input."""
import pytest
import torch

from gear.models.quantizers import LookupFreeQuantizer, QuantizerOutput, entropy_regularizer
from gear.models.quantizers.lookup_free import lfq_entropy
from gear.registry import QUANTIZERS


def _generic_and_factorised(k: int, n: int, chunk_size: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    # latents around the scale where T = 0.01 gives neither one-hot nor uniform assignments
    x = (torch.randn(n, k, generator=gen, dtype=torch.float64) * 0.01).requires_grad_()
    codebook = LookupFreeQuantizer(2**k).codebook.double()  # (K, k)
    generic = entropy_regularizer(-2 * x @ codebook.t(), 0.01)
    (g_generic, ) = torch.autograd.grad(generic, x)
    ours = lfq_entropy(x, codebook, 0.01, chunk_size)
    (g_ours, ) = torch.autograd.grad(ours, x)
    return generic, ours, g_generic, g_ours


@pytest.mark.parametrize('k', [6, 8])
@pytest.mark.parametrize('chunk_size', [1, 7, 64, 1000])  # 7 does not divide N = 96
def test_entropy_equals_generic_value_and_gradient(k, chunk_size):
    generic, ours, g_generic, g_ours = _generic_and_factorised(k, 96, chunk_size)
    torch.testing.assert_close(ours, generic, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_ours, g_generic, rtol=1e-5, atol=1e-5)
    assert g_generic.abs().max() > 1e-3  # the comparison is not between two zeros


def test_entropy_equals_generic_in_float32():
    k, n = 8, 50
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(n, k, generator=gen) * 0.01).requires_grad_()
    q = LookupFreeQuantizer(2**k, entropy_loss_ratio=1.0, entropy_chunk_size=16).train()
    out = q(x.t().reshape(1, k, 5, 10))  # (1, k, 5, 10): positions are x's rows
    generic = entropy_regularizer(out.d, 0.01)
    torch.testing.assert_close(out.losses['loss_entropy'], generic, rtol=1e-5, atol=1e-5)
    (g_ours, ) = torch.autograd.grad(out.losses['loss_entropy'], x, retain_graph=True)
    (g_generic, ) = torch.autograd.grad(generic, x)
    torch.testing.assert_close(g_ours, g_generic, rtol=1e-4, atol=1e-5)


def test_codes_indices_and_distances():
    k = 5
    q = QUANTIZERS.build(dict(type='LookupFreeQuantizer', codebook_size=2**k)).eval()
    assert q.codebook_size == 32 and q.embed_dim == 5
    assert dict(q.state_dict()) == {}  # no parameters, no persistent buffers
    z = torch.randn(2, k, 3, 4)
    out = q(z)
    assert isinstance(out, QuantizerOutput)
    assert out.indices.shape == (2, 3, 4) and out.d.shape == (2, 12, 32)
    assert out.z_q.shape == z.shape
    torch.testing.assert_close(out.z_q, torch.where(z > 0, 1.0, -1.0))
    # index bit i is channel i's sign (little-endian, the release's mask 2**arange(k))
    bits = (z > 0).long()  # (B, k, H, W)
    expected = sum(bits[:, i] << i for i in range(k))
    assert torch.equal(out.indices, expected)
    assert torch.equal(out.d.argmin(-1).reshape(2, 3, 4), out.indices)
    torch.testing.assert_close(q.embed(out.indices), out.z_q)
    # d = -2 <x, c_k> with c_k the code of index k
    x = z.permute(0, 2, 3, 1).reshape(2, 12, k)
    codes = q.embed(torch.arange(32).reshape(1, 1, 32))[0, :, 0].t()  # (K, k)
    torch.testing.assert_close(out.d, -2 * x @ codes.t())
    assert set(out.metrics) == {'usage', 'perplexity', 'entropy'}


def test_losses_in_training_only_and_gradients():
    q = LookupFreeQuantizer(2**4, entropy_chunk_size=5)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    assert q.eval()(z).losses == {}
    out = q.train()(z)
    assert set(out.losses) == {'loss_commit', 'loss_entropy'}
    x = z.detach().permute(0, 2, 3, 1).reshape(2, 9, 4)
    torch.testing.assert_close(out.losses['loss_commit'],
                               0.25 * ((x - torch.where(x > 0, 1.0, -1.0)) ** 2).mean())
    # a function of d (the soft read-out) reaches z; so does z_q (straight-through)
    (g, ) = torch.autograd.grad((out.d.neg() / 0.1).softmax(-1)[..., 3].sum(), z)
    assert g.abs().sum() > 0
    (g, ) = torch.autograd.grad(out.z_q.sum(), z)
    torch.testing.assert_close(g, torch.ones_like(z))


def test_fp32_under_autocast_and_bad_sizes():
    q = LookupFreeQuantizer(2**4).train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = q(torch.randn(1, 4, 2, 2).bfloat16())
    assert out.d.dtype == torch.float32 and out.losses['loss_entropy'].dtype == torch.float32
    with pytest.raises(ValueError, match='power of two'):
        LookupFreeQuantizer(100)
    with pytest.raises(ValueError, match='4 bits got 3 channels'):
        q(torch.randn(1, 3, 2, 2))
