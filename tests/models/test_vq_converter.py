"""LlamaGen VQ converter: released VQ-16 key map (both ways), bundles, errors, the CLI."""
import hashlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gear.models.converters import VQ16_ARCH, convert_llamagen_vq, infer_arch, to_llamagen_vq
from gear.models.tokenizers import VQTokenizer

from ..conftest import golden_file

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def released_vq16(golden_dir):
    """A state dict of random tensors with the released VQ-16 names and shapes."""
    shapes = golden_file(golden_dir, 'released_state_dict_shapes.json')
    entry = json.loads(shapes.read_text())['VQ-16']
    gen = torch.Generator().manual_seed(0)
    state_dict = {k: torch.randn(*shape, generator=gen) for k, shape in entry['state_dict'].items()}
    return state_dict, entry['num_params']


SMALL_ARCH = dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=32, in_channels=3, dropout=0.0,
                  quantizer=dict(type='VectorQuantizer', codebook_size=64, embed_dim=8, l2_norm=True))


@pytest.fixture(scope='module')
def vq16_model():
    return VQTokenizer(**VQ16_ARCH)


@pytest.fixture(scope='module')
def released_small():
    """Released-style (``quantize.``) state dict of a small VQTokenizer."""
    torch.manual_seed(0)
    return to_llamagen_vq(VQTokenizer(**SMALL_ARCH).state_dict())


def test_vq16_loads_strictly_and_round_trips(released_vq16, vq16_model):
    released, num_params = released_vq16
    converted = convert_llamagen_vq(released)
    vq16_model.load_state_dict(converted, strict=True)
    # the json counts every tensor of the released state dict; gear's VQTokenizer has no
    # buffers, so its parameter count must equal it exactly
    assert sum(p.numel() for p in vq16_model.parameters()) == num_params
    assert sum(math.prod(v.shape) for v in converted.values()) == num_params
    assert torch.equal(vq16_model.quantizer.embedding.weight, released['quantize.embedding.weight'])
    back = to_llamagen_vq(vq16_model.state_dict())
    assert set(back) == set(released)
    assert all(back[k].shape == released[k].shape for k in released)
    arch = infer_arch(converted)
    assert arch == {**VQ16_ARCH, 'ch_mult': tuple(VQ16_ARCH['ch_mult'])}


def test_bundles_and_prefixes(released_small):
    released = released_small
    expected = convert_llamagen_vq(released)
    ema = {k: v + 1 for k, v in released.items()}
    wrapped = {f'module.{k}': v for k, v in released.items()}
    ar_ema = {'tok_embeddings.weight': torch.zeros(3, 2)}  # GEAR bundles: 'ema' is the AR's

    def same(a, b):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    assert same(convert_llamagen_vq({'model': released, 'optimizer': {}, 'steps': 3}), expected)
    assert same(convert_llamagen_vq({'state_dict': wrapped}), expected)
    gear_bundle = {'vq': wrapped, 'vq_ema': ema, 'ar': {}, 'ema': ar_ema, 'discriminator': {}}
    assert same(convert_llamagen_vq(gear_bundle), expected)
    ema_expected = convert_llamagen_vq(ema)
    assert same(convert_llamagen_vq(gear_bundle, key='vq_ema'), ema_expected)
    assert same(convert_llamagen_vq(gear_bundle, prefer_ema=True), ema_expected)
    # a LlamaGen bundle whose 'ema' is the tokenizer's EMA
    assert same(convert_llamagen_vq({'model': released, 'ema': ema}, prefer_ema=True), ema_expected)
    # training-only entries are dropped; torch.compile prefixes stripped
    extra = {'_orig_mod.' + k: v for k, v in released.items()}
    extra.update({'quantize.codebook_used': torch.zeros(65536),
                  'discriminator.main.0.weight': torch.zeros(1),
                  'perceptual_loss.net.0.weight': torch.zeros(1)})
    assert same(convert_llamagen_vq(extra), expected)
    with pytest.raises(KeyError, match='nope'):
        convert_llamagen_vq({'model': released}, key='nope')


def test_unknown_keys_are_named(released_small):
    released = released_small
    bad = dict(released, **{'encoderx.weight': torch.zeros(1), 'foo.bar': torch.zeros(1)})
    with pytest.raises(ValueError, match=r'2 unknown keys.*encoderx\.weight.*foo\.bar'):
        convert_llamagen_vq(bad)
    with pytest.raises(ValueError, match='foo.bar'):
        to_llamagen_vq({'foo.bar': torch.zeros(1)})


def test_cli_writes_sha_named_file(tmp_path, released_small):
    released, arch = released_small, SMALL_ARCH
    src = tmp_path / 'gear-vq.pt'
    # a GEAR-style bundle: tokenizer online + EMA weights
    ema = {k: v + 0.5 for k, v in released.items()}
    torch.save({'vq': released, 'vq_ema': ema, 'steps': 10}, src)
    result = subprocess.run(
        [sys.executable, 'tools/model_converters/tokenizer.py', str(src),
         str(tmp_path / 'out' / 'gear-vq-small.pth'), '--key', 'vq_ema'],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    files = list((tmp_path / 'out').iterdir())
    assert len(files) == 1  # no temporary file left behind
    match = re.fullmatch(r'gear-vq-small-([0-9a-f]{8})\.pth', files[0].name)
    assert match, files[0].name
    assert hashlib.sha256(files[0].read_bytes()).hexdigest()[:8] == match.group(1)
    ckpt = torch.load(files[0], weights_only=True)
    assert ckpt['schema_version'] == 1
    assert ckpt['arch'] == dict(arch, type='VQTokenizer')
    loaded = VQTokenizer(**arch)
    loaded.load_state_dict(ckpt['state_dict'], strict=True)
    torch.testing.assert_close(loaded.quant_conv.weight, ema['quant_conv.weight'])
