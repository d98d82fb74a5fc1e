"""Open-MAGVIT2 / GEAR-LFQ converter: the released LFQ-16 key map (both ways), Lightning
checkpoints with LitEma shadows, GEAR bundles, detection, errors."""
import json
import math

import pytest
import torch

from gear.models.converters import (convert_lfq, holds_lfq, infer_lfq_arch, to_llamagen_vq,
                                    to_released_lfq)
from gear.models.tokenizers import LFQTokenizer, VQTokenizer

from ..conftest import golden_file

LFQ16 = dict(ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=4, z_channels=14)


@pytest.fixture(scope='module')
def released_lfq16(golden_dir):
    """A state dict of random tensors with the released LFQ-16 names and shapes."""
    shapes = golden_file(golden_dir, 'released_state_dict_shapes.json')
    entry = json.loads(shapes.read_text())['LFQ-16']
    gen = torch.Generator().manual_seed(0)
    state_dict = {k: torch.randn(*shape, generator=gen) for k, shape in entry['state_dict'].items()}
    return state_dict, entry['num_params']


@pytest.fixture(scope='module')
def lfq16_model():
    return LFQTokenizer(**LFQ16)


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def lightning(live, ema):
    """Open-MAGVIT2's Lightning checkpoint: live weights, LitEma shadows, the loss module."""
    state_dict = dict(live)
    state_dict.update({'model_ema.' + k.replace('.', ''): v for k, v in ema.items()})
    state_dict.update({'model_ema.decay': torch.tensor(0.999),
                       'model_ema.num_updates': torch.tensor(10),
                       'model_ema.lossdiscriminatormain0weight': torch.zeros(1),
                       'loss.discriminator.main.0.weight': torch.zeros(1),
                       'loss.perceptual_loss.net.slice1.0.weight': torch.zeros(1)})
    return {'state_dict': state_dict, 'epoch': 3, 'global_step': 100, 'optimizer_states': [{}],
            'lr_schedulers': [], 'callbacks': {}, 'pytorch-lightning_version': '2.1.0'}


def test_lfq16_loads_strictly_and_round_trips(released_lfq16, lfq16_model):
    released, num_params = released_lfq16
    assert holds_lfq(released)
    converted = convert_lfq(released)
    lfq16_model.load_state_dict(converted, strict=True)
    assert sum(p.numel() for p in lfq16_model.parameters()) == num_params
    assert sum(math.prod(v.shape) for v in converted.values()) == num_params
    torch.testing.assert_close(lfq16_model.decoder.adaptive[3].gamma.weight,
                               released['decoder.adaptive.3.gamma.weight'], rtol=0, atol=0)
    back = to_released_lfq(lfq16_model.state_dict())
    assert set(back) == set(released)
    assert all(torch.equal(back[k], released[k]) for k in released)
    assert infer_lfq_arch(converted) == dict(
        type='LFQTokenizer', **LFQ16, in_channels=3,
        quantizer=dict(type='LookupFreeQuantizer', codebook_size=16384))


def test_lightning_checkpoint_with_ema(released_lfq16, lfq16_model):
    released, _ = released_lfq16
    ema = {k: v + 1 for k, v in released.items()}
    ckpt = lightning(released, ema)
    assert same(convert_lfq(ckpt), released)
    from_ema = convert_lfq(ckpt, prefer_ema=True)
    assert same(from_ema, ema)
    lfq16_model.load_state_dict(from_ema, strict=True)
    torch.testing.assert_close(lfq16_model.encoder.conv_out.bias, ema['encoder.conv_out.bias'],
                               rtol=0, atol=0)
    # wrapper prefixes are stripped, shadows included
    wrapped = {'state_dict': {'module.' + k: v for k, v in ckpt['state_dict'].items()}}
    assert same(convert_lfq(wrapped, prefer_ema=True), ema)
    # no shadows at all: the live weights; shadows for part of the codec: an error
    assert same(convert_lfq({'state_dict': released}, prefer_ema=True), released)
    partial = dict(ckpt['state_dict'])
    del partial['model_ema.encoderconv_outbias']
    with pytest.raises(ValueError, match=r'no model_ema\. shadow: encoder\.conv_out\.bias'):
        convert_lfq({'state_dict': partial}, prefer_ema=True)


def test_gear_bundle(released_lfq16):
    released, _ = released_lfq16
    ema = {k: v - 1 for k, v in released.items()}
    bundle = {'vq': {'module.' + k: v for k, v in released.items()}, 'vq_ema': ema,
              'ar': {'tok_embeddings.weight': torch.zeros(3, 2)},
              'ema': {'tok_embeddings.weight': torch.zeros(3, 2)}, 'projectors': {},
              'discriminator': {}, 'optimizer_vq': {}, 'args': {'lr': 1e-4}, 'steps': 7}
    assert same(convert_lfq(bundle), released)
    assert same(convert_lfq(bundle, prefer_ema=True), ema)
    assert same(convert_lfq(bundle, key='vq_ema'), ema)
    with pytest.raises(KeyError, match='nope'):
        convert_lfq(bundle, key='nope')


def test_unknown_keys_and_detection(released_lfq16):
    released, _ = released_lfq16
    bad = dict(released, **{'quantize.embedding.weight': torch.zeros(1), 'foo.bar': torch.zeros(1)})
    with pytest.raises(ValueError, match=r'2 unknown keys.*foo\.bar.*quantize\.embedding\.weight'):
        convert_lfq(bad)
    with pytest.raises(ValueError, match=r'model_ema\.foobar'):
        convert_lfq(dict(released, **{'model_ema.foobar': torch.zeros(1)}))
    with pytest.raises(ValueError, match='foo.bar'):
        to_released_lfq({'foo.bar': torch.zeros(1)})
    assert not holds_lfq(bad)  # a learnt codebook: not LFQ
    with torch.device('meta'):
        vq = to_llamagen_vq(VQTokenizer(ch_mult=(1, 2), num_res_blocks=1).state_dict())
    assert not holds_lfq(vq)
    assert not holds_lfq(None)
