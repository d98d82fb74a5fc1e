"""VQTokenizer: golden match against the released LlamaGen VQ architecture, shapes, registry."""

import pytest
import torch

from gear.models.converters import convert_llamagen_vq
from gear.models.quantizers import QuantizerOutput
from gear.models.tokenizers import VQTokenizer
from gear.registry import TOKENIZERS

from ..conftest import golden_file


def tokenizer_from_fixture_arch(arch: dict) -> VQTokenizer:
    """Map the fixture's arch record onto VQTokenizer kwargs."""
    assert arch['codebook_l2_norm'] and arch['attn_at_lowest_resolution']
    return VQTokenizer(
        ch=arch['ch'], ch_mult=tuple(arch['ch_mult']), num_res_blocks=arch['num_res_blocks'],
        z_channels=arch['z_channels'], in_channels=arch['in_channels'],
        quantizer=dict(type='VectorQuantizer', codebook_size=arch['codebook_size'],
                       embed_dim=arch['codebook_embed_dim'], l2_norm=True))


@pytest.fixture(scope='module')
def golden(golden_dir):
    ref = torch.load(golden_file(golden_dir, 'vq_small.pt'), weights_only=True)
    model = tokenizer_from_fixture_arch(ref['arch'])
    model.load_state_dict(convert_llamagen_vq(ref['state_dict']), strict=True)
    return model.eval(), ref


def test_golden_matches_released_architecture(golden):
    model, ref = golden
    close = dict(rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # one encoder and one decoder pass: this CPU path is the slow part
        z = model.encode_features(ref['input'])
        torch.testing.assert_close(z, ref['pre_quant'], **close)
        q = model.quantizer(z)
        assert torch.equal(q.indices.flatten(1), ref['indices'])  # (B, h*w)
        torch.testing.assert_close(q.d, ref['distances'], **close)
        torch.testing.assert_close(q.z_q, ref['quant'], **close)
        torch.testing.assert_close(model.quantizer.embed(q.indices), ref['quant'], **close)
        recon = model.decode(q.z_q)
        torch.testing.assert_close(recon, ref['recon'], **close)


def test_shapes_registry_and_properties():
    cfg = dict(type='VQTokenizer', ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, z_channels=16,
               quantizer=dict(type='VectorQuantizer', codebook_size=64, embed_dim=4))
    model = TOKENIZERS.build(cfg)
    assert model.codebook_size == 64 and model.downsample_factor == 4
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    x_hat, q = model(x)
    assert isinstance(q, QuantizerOutput)
    assert x_hat.shape == x.shape
    assert q.z_q.shape == (2, 4, 2, 2) and q.indices.shape == (2, 2, 2) and q.d.shape == (2, 4, 64)
    assert model.encode_features(x).shape == (2, 4, 2, 2)
    torch.testing.assert_close(model.decode_indices(q.indices), x_hat.detach())
    assert set(q.losses) == {'loss_codebook', 'loss_commit', 'loss_entropy'}
    assert torch.equal(model.encode(x).indices, q.indices)
    # gradient of the reconstruction reaches the encoder through the straight-through z_q
    x_hat.sum().backward()
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0


def test_vq16_defaults_layout():
    with torch.device('meta'):  # layout only: no memory, no init cost
        model = VQTokenizer()
    assert model.downsample_factor == 16 and model.codebook_size == 16384
    # attention only at the lowest resolution: last encoder level, first decoder level
    assert [len(b.attn) for b in model.encoder.conv_blocks] == [0, 0, 0, 0, 2]
    assert [len(b.attn) for b in model.decoder.conv_blocks] == [3, 0, 0, 0, 0]
    assert [hasattr(b, 'downsample') for b in model.encoder.conv_blocks] == [True] * 4 + [False]
    assert [hasattr(b, 'upsample') for b in model.decoder.conv_blocks] == [True] * 4 + [False]


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_upsample_equals_nearest_interpolation_then_conv(dtype):
    """``Upsample`` (four 2x2 convolutions of the input, interleaved) computes the released
    ``conv3x3(nearest x2)``: the same output and gradients (input, weight, bias), odd and even
    sizes, to float rounding, with 16 / 36 of the convolution FLOPs (plus a border row and
    column)."""
    import torch.nn.functional as F
    from gear.models.tokenizers import Upsample
    from gear.utils.flops import flop_counter
    torch.manual_seed(0)
    up = Upsample(6).to(dtype)
    x = torch.randn(2, 6, 5, 7, dtype=dtype, requires_grad=True)
    with flop_counter() as fast_count:
        out = up(x)
    with flop_counter() as ref_count:
        ref = F.conv2d(F.interpolate(x, scale_factor=2.0, mode='nearest'), up.conv.weight,
                       up.conv.bias, padding=1)
    assert out.shape == ref.shape == (2, 6, 10, 14)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, ref, **tol)
    g = torch.randn_like(ref)
    params = (x, up.conv.weight, up.conv.bias)
    for a, b in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b, **tol)
    # (H + 1) (W + 1) positions x 4 phases x 4 taps vs 2H x 2W positions x 9 taps
    assert fast_count.get_total_flops() * 9 * 10 * 14 == ref_count.get_total_flops() * 16 * 6 * 8
