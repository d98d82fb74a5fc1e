"""IBQ converter: released IBQ-16 key map (both ways), Lightning checkpoints with LitEma
shadows, GEAR bundles, family detection, errors."""
import json
import math

import pytest
import torch

from gear.models.converters import (IBQ16_ARCH, convert_ibq, holds_ibq, infer_ibq_arch,
                                    to_released_ibq)
from gear.models.tokenizers import IBQTokenizer

from ..conftest import golden_file

SMALL_ARCH = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16, ), resolution=32,
                  z_channels=16, in_channels=3, dropout=0.0,
                  quantizer=dict(type='IndexBackpropQuantizer', codebook_size=64, embed_dim=16))


@pytest.fixture(scope='module')
def released_shapes(golden_dir):
    return json.loads(golden_file(golden_dir, 'released_state_dict_shapes.json').read_text())


@pytest.fixture(scope='module')
def released_ibq16(released_shapes):
    """A state dict of random tensors with the released IBQ-16 names and shapes."""
    entry = released_shapes['IBQ-16']
    gen = torch.Generator().manual_seed(0)
    state_dict = {k: torch.randn(*shape, generator=gen) for k, shape in entry['state_dict'].items()}
    return state_dict, entry['num_params']


@pytest.fixture(scope='module')
def ibq16_model():
    return IBQTokenizer(ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=4, attn_resolutions=(16, ),
                        resolution=256, z_channels=256,
                        quantizer=dict(type='IndexBackpropQuantizer', codebook_size=16384,
                                       embed_dim=256))


@pytest.fixture(scope='module')
def released_small():
    """Released-style (``quantize.``) state dict of a small IBQTokenizer."""
    torch.manual_seed(0)
    return to_released_ibq(IBQTokenizer(**SMALL_ARCH).state_dict())


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _lightning(released, shadow):
    """IBQ's Lightning checkpoint: live weights, the loss module, LitEma shadows of both."""
    live = dict(released, **{'loss.discriminator.main.0.weight': torch.zeros(2, 3),
                             'loss.perceptual_loss.net.0.weight': torch.zeros(1)})
    state_dict = dict(live)
    state_dict.update({'model_ema.' + k.replace('.', ''): shadow(v) for k, v in live.items()
                       if 'perceptual_loss' not in k})  # LPIPS is frozen: no shadow
    state_dict['model_ema.decay'] = torch.tensor(0.999)
    state_dict['model_ema.num_updates'] = torch.tensor(10, dtype=torch.int)
    return {'state_dict': state_dict, 'epoch': 3, 'global_step': 100, 'optimizer_states': [{}],
            'lr_schedulers': [], 'callbacks': {}}


def test_ibq16_loads_strictly_and_round_trips(released_ibq16, ibq16_model):
    released, num_params = released_ibq16
    converted = convert_ibq(released)
    assert 'quantizer.embedding.weight' in converted and 'quantize.embedding.weight' not in converted
    ibq16_model.load_state_dict(converted, strict=True)
    # the json counts every tensor of the released state dict; IBQTokenizer has no buffers
    assert sum(p.numel() for p in ibq16_model.parameters()) == num_params
    assert sum(math.prod(v.shape) for v in converted.values()) == num_params
    assert torch.equal(ibq16_model.quantizer.embedding.weight, released['quantize.embedding.weight'])
    back = to_released_ibq(ibq16_model.state_dict())
    assert set(back) == set(released)
    assert all(torch.equal(back[k], released[k]) for k in released)
    assert infer_ibq_arch(converted) == dict(IBQ16_ARCH, type='IBQTokenizer')
    assert infer_ibq_arch(released, resolution=512)['attn_resolutions'] == (32, )


def test_ibq16_lightning_checkpoint_with_ema_shadows(released_ibq16, ibq16_model):
    released, _ = released_ibq16
    one = torch.tensor(1.0)
    ckpt = _lightning(released, lambda v: one.expand(v.shape))  # no memory for the shadows
    ibq16_model.load_state_dict(convert_ibq(ckpt, prefer_ema=True), strict=True)
    assert all(torch.all(p == 1) for p in ibq16_model.parameters())
    live = convert_ibq(ckpt)
    assert _same(live, convert_ibq(released))


def test_lightning_and_gear_bundles(released_small):
    released = released_small
    expected = convert_ibq(released)
    ckpt = _lightning(released, lambda v: v + 1)
    ema_expected = {k: v + 1 for k, v in expected.items()}
    assert _same(convert_ibq(ckpt), expected)
    assert _same(convert_ibq(ckpt, prefer_ema=True), ema_expected)
    assert _same(convert_ibq(ckpt['state_dict'], prefer_ema=True), ema_expected)
    model = IBQTokenizer(**SMALL_ARCH)
    model.load_state_dict(convert_ibq(ckpt, prefer_ema=True), strict=True)
    # GEAR stage-0/1 bundle: 'ema' is the AR's EMA; the tokenizer may be DDP-wrapped
    wrapped = {f'module.{k}': v for k, v in released.items()}
    ema = {k: v + 2 for k, v in released.items()}
    bundle = {'vq': wrapped, 'vq_ema': ema, 'ar': {'tok_embeddings.weight': torch.zeros(3, 2)},
              'ema': {'tok_embeddings.weight': torch.zeros(3, 2)}, 'projectors': {},
              'discriminator': {'main.0.weight': torch.zeros(1)}, 'optimizer_vq': {},
              'optimizer_ar': {}, 'args': {'vq_model': 'IBQ-16'}, 'steps': 7}
    assert _same(convert_ibq(bundle), expected)
    assert _same(convert_ibq(bundle, prefer_ema=True), convert_ibq(ema))
    assert _same(convert_ibq(bundle, key='vq_ema'), convert_ibq(ema))
    # a checkpoint without EMA weights gives its live weights under prefer_ema
    assert _same(convert_ibq({'state_dict': released}, prefer_ema=True), expected)
    with pytest.raises(KeyError, match='nope'):
        convert_ibq(bundle, key='nope')


def test_errors_name_the_keys(released_small):
    released = released_small
    bad = dict(released, **{'encoderx.weight': torch.zeros(1), 'foo.bar': torch.zeros(1)})
    with pytest.raises(ValueError, match=r'2 unknown keys.*encoderx\.weight.*foo\.bar'):
        convert_ibq(bad)
    with pytest.raises(ValueError, match='foo.bar'):
        to_released_ibq({'foo.bar': torch.zeros(1)})
    with pytest.raises(ValueError, match='loss.x'):  # gear state dicts have no training-only keys
        to_released_ibq({'loss.x': torch.zeros(1)})
    # a shadow with no live weight, and shadows that miss a weight
    ckpt = _lightning(released, lambda v: v + 1)['state_dict']
    with pytest.raises(ValueError, match='model_ema.stray'):
        convert_ibq(dict(ckpt, **{'model_ema.stray': torch.zeros(1)}), prefer_ema=True)
    del ckpt['model_ema.quantizeembeddingweight']
    with pytest.raises(ValueError, match='quantize.embedding.weight'):
        convert_ibq(ckpt, prefer_ema=True)
    with pytest.raises(KeyError, match='no IBQ tokenizer state dict'):
        convert_ibq({'something': {'encoder.conv_blocks.0.res.0.conv1.weight': torch.zeros(1)}})


def test_holds_ibq(released_shapes, released_small):
    assert holds_ibq(released_small)
    assert holds_ibq(convert_ibq(released_small))
    assert holds_ibq({f'module.{k}': v for k, v in released_small.items()})
    for family in ('VQ-16', 'LFQ-16', 'LlamaGen-B'):
        assert not holds_ibq(dict.fromkeys(released_shapes[family]['state_dict'])), family
    assert holds_ibq(dict.fromkeys(released_shapes['IBQ-16']['state_dict']))
    assert not holds_ibq(None) and not holds_ibq({})
