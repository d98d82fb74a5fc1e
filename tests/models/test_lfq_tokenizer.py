"""LFQTokenizer: golden match against the released Open-MAGVIT2 architecture, shapes, registry,
the codebook-size check."""
import pytest
import torch

from gear.models.converters import convert_lfq, infer_lfq_arch
from gear.models.quantizers import QuantizerOutput
from gear.models.tokenizers import LFQTokenizer
from gear.registry import TOKENIZERS

from ..conftest import golden_file


@pytest.fixture(scope='module')
def golden(golden_dir):
    ref = torch.load(golden_file(golden_dir, 'lfq_small.pt'), weights_only=True)
    state_dict = convert_lfq(ref['state_dict'])
    arch = infer_lfq_arch(state_dict)
    assert arch == dict(type='LFQTokenizer', ch=32, ch_mult=(1, 2), num_res_blocks=1,
                        z_channels=6, in_channels=3,
                        quantizer=dict(type='LookupFreeQuantizer', codebook_size=64))
    model = TOKENIZERS.build(arch)
    model.load_state_dict(state_dict, strict=True)
    return model.eval(), ref


def test_golden_matches_released_architecture(golden):
    model, ref = golden
    close = dict(rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        q = model.encode(ref['input'])
        assert torch.equal(q.indices.flatten(1), ref['indices'])  # (B, h*w), exact
        torch.testing.assert_close(q.d, ref['distances'], **close)
        torch.testing.assert_close(q.z_q, ref['quant'], **close)
        torch.testing.assert_close(model.quantizer.embed(q.indices), ref['quant'], **close)
        torch.testing.assert_close(model.decode(q.z_q), ref['recon'], **close)
        torch.testing.assert_close(model.decode_indices(q.indices), ref['recon'], **close)


def test_shapes_registry_and_properties():
    cfg = dict(type='LFQTokenizer', ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, z_channels=4,
               quantizer=dict(type='LookupFreeQuantizer', codebook_size=16))
    model = TOKENIZERS.build(cfg)
    assert model.codebook_size == 16 and model.downsample_factor == 4
    assert model.decoder.last_layer is model.decoder.conv_out.weight
    assert all(k.startswith(('encoder.', 'decoder.')) for k in model.state_dict())
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    x_hat, q = model(x)
    assert isinstance(q, QuantizerOutput)
    assert x_hat.shape == x.shape
    assert q.z_q.shape == (2, 4, 2, 2) and q.indices.shape == (2, 2, 2) and q.d.shape == (2, 4, 16)
    assert model.encode_features(x).shape == (2, 4, 2, 2)
    torch.testing.assert_close(model.decode_indices(q.indices), x_hat.detach())
    assert set(q.losses) == {'loss_commit', 'loss_entropy'}
    # the reconstruction reaches the encoder through the straight-through z_q, and so does
    # the soft read-out of d
    x_hat.sum().backward(retain_graph=True)
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0
    model.zero_grad()
    (-q.d / 0.1).softmax(-1)[..., 0].sum().backward()
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0
    assert model.decoder.conv_in.weight.grad is None


def test_codebook_size_must_match_z_channels():
    with pytest.raises(ValueError, match=r'^model\.tokenizer\.quantizer\.codebook_size: 64 is '
                                         r'not 2\*\*z_channels = 2\*\*5 = 32'):
        LFQTokenizer(ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=5,
                     quantizer=dict(type='LookupFreeQuantizer', codebook_size=64))
    with pytest.raises(ValueError, match=r'codebook_size: 16384 is not 2\*\*z_channels = 2\*\*6 = 64'):
        LFQTokenizer(ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=6,
                     quantizer=dict(type='LookupFreeQuantizer'))  # the quantizer's default K
