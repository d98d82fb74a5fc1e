"""IBQTokenizer: golden match against the released IBQ architecture, shapes, registry, layout."""
import pytest
import torch

from gear.models.converters import convert_ibq, infer_ibq_arch
from gear.models.quantizers import QuantizerOutput
from gear.models.tokenizers import IBQTokenizer
from gear.registry import TOKENIZERS

from ..conftest import golden_file


def tokenizer_from_fixture_arch(arch: dict) -> IBQTokenizer:
    """Map the fixture's arch record onto IBQTokenizer kwargs."""
    return IBQTokenizer(
        ch=arch['ch'], ch_mult=tuple(arch['ch_mult']), num_res_blocks=arch['num_res_blocks'],
        attn_resolutions=tuple(arch['attn_resolutions']), resolution=arch['resolution'],
        z_channels=arch['z_channels'],
        quantizer=dict(type='IndexBackpropQuantizer', codebook_size=arch['codebook_size'],
                       embed_dim=arch['codebook_embed_dim']))


@pytest.fixture(scope='module')
def golden(golden_dir):
    ref = torch.load(golden_file(golden_dir, 'ibq_small.pt'), weights_only=True)
    model = tokenizer_from_fixture_arch(ref['arch'])
    model.load_state_dict(convert_ibq(ref['state_dict']), strict=True)
    return model.eval(), ref


def test_golden_matches_released_architecture(golden):
    model, ref = golden
    close = dict(rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        q = model.encode(ref['input'])
        assert torch.equal(q.indices.flatten(1), ref['indices'])  # (B, h*w)
        torch.testing.assert_close(q.d, ref['distances'], **close)
        torch.testing.assert_close(q.z_q, ref['quant'], **close)
        torch.testing.assert_close(model.quantizer.embed(q.indices), ref['quant'], **close)
        recon = model.decode(q.z_q)
        torch.testing.assert_close(recon, ref['recon'], **close)
    assert q.losses == {}  # eval mode


def test_golden_arch_inferred_from_shapes(golden):
    _, ref = golden
    arch = infer_ibq_arch(ref['state_dict'], resolution=ref['arch']['resolution'])
    assert arch['attn_resolutions'] == tuple(ref['arch']['attn_resolutions'])
    model = TOKENIZERS.build(arch)
    model.load_state_dict(convert_ibq(ref['state_dict']), strict=True)


def test_shapes_registry_and_properties():
    cfg = dict(type='IBQTokenizer', ch=32, ch_mult=(1, 1, 2), num_res_blocks=1,
               attn_resolutions=(2, ), resolution=8, z_channels=16,
               quantizer=dict(type='IndexBackpropQuantizer', codebook_size=64, embed_dim=4))
    model = TOKENIZERS.build(cfg)
    assert model.codebook_size == 64 and model.downsample_factor == 4
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    x_hat, q = model(x)
    assert isinstance(q, QuantizerOutput)
    assert x_hat.shape == x.shape
    assert q.z_q.shape == (2, 4, 2, 2) and q.indices.shape == (2, 2, 2) and q.d.shape == (2, 4, 64)
    assert model.encode_features(x).shape == (2, 4, 2, 2)
    torch.testing.assert_close(model.decode_indices(q.indices), x_hat.detach())
    assert set(q.losses) == {'loss_index_backprop', 'loss_commit', 'loss_codebook', 'loss_entropy'}
    assert torch.equal(model.encode(x).indices, q.indices)
    assert model.decoder.last_layer is model.decoder.conv_out.weight
    # the reconstruction's gradient reaches the encoder and (index backpropagation) the codebook
    x_hat.sum().backward()
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0
    assert model.quantizer.embedding.weight.grad.abs().sum() > 0


def test_ibq16_defaults_layout():
    with torch.device('meta'):  # layout only: no memory, no init cost
        model = IBQTokenizer()
    assert model.downsample_factor == 16 and model.codebook_size == 16384
    assert model.quantizer.embed_dim == 256
    # attention at 16 px only: encoder level 4 (256 / 2**4), and the decoder's up[4]
    assert [len(level.attn) for level in model.encoder.down] == [0, 0, 0, 0, 4]
    assert [len(level.attn) for level in model.decoder.up] == [0, 0, 0, 0, 5]
    assert [len(level.block) for level in model.decoder.up] == [5] * 5
    assert [hasattr(level, 'downsample') for level in model.encoder.down] == [True] * 4 + [False]
    # up is in encoder-level order: up[0] is the highest resolution, has no upsample, and
    # takes the width of level 1 into level 0's width
    assert [hasattr(level, 'upsample') for level in model.decoder.up] == [False] + [True] * 4
    assert tuple(model.decoder.up[0].block[0].conv1.weight.shape[:2]) == (128, 128)
    assert tuple(model.decoder.up[1].block[0].conv1.weight.shape[:2]) == (128, 256)
    assert tuple(model.decoder.up[4].block[0].conv1.weight.shape[:2]) == (512, 512)


def test_attention_follows_attn_resolutions():
    # levels at 16, 8, 4 px; attention at 16 and 4 (not only the lowest level, as in vqgan.py)
    model = IBQTokenizer(ch=32, ch_mult=(1, 1, 1), num_res_blocks=2, attn_resolutions=(16, 4),
                         resolution=16, z_channels=8,
                         quantizer=dict(type='IndexBackpropQuantizer', codebook_size=8, embed_dim=4))
    assert [len(level.attn) for level in model.encoder.down] == [2, 0, 2]
    assert [len(level.attn) for level in model.decoder.up] == [3, 0, 3]
    arch = infer_ibq_arch(model.state_dict(), resolution=16)
    assert arch['attn_resolutions'] == (4, 16)
    assert arch['num_res_blocks'] == 2 and arch['ch_mult'] == (1, 1, 1)
