"""LlamaGen GPT converter: released B/L/XL key maps (both ways), bundles, errors, the CLI."""
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gear.models.ar import LlamaGenGPT
from gear.models.converters import (GPT_ARCHS, convert_llamagen_gpt, gpt_arch_from_llamagen,
                                    to_llamagen_gpt)
from gear.models.converters.llamagen_gpt import infer_arch

from ..conftest import golden_file

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def released_shapes(golden_dir):
    return json.loads(golden_file(golden_dir, 'released_state_dict_shapes.json').read_text())


@pytest.fixture(scope='module')
def small(golden_dir):
    """The golden fixture's released-style state dict and LlamaGen arch."""
    ref = torch.load(golden_file(golden_dir, 'ar_small.pt'), weights_only=True)
    return ref['state_dict'], ref['arch']


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize('size', ['B', 'L', 'XL'])
def test_released_keys_shapes_and_round_trip(released_shapes, size):
    entry = released_shapes[f'LlamaGen-{size}']
    # meta tensors: names and shapes only, no memory (XL has 775M parameters)
    released = {k: torch.empty(shape, device='meta') for k, shape in entry['state_dict'].items()}
    converted = convert_llamagen_gpt({'model': released})
    with torch.device('meta'):
        model = LlamaGenGPT(**GPT_ARCHS[size])
    own = model.state_dict()
    assert set(converted) == set(own)
    assert all(converted[k].shape == own[k].shape for k in own)
    assert model.num_params() == entry['num_params']
    model.load_state_dict(converted, strict=True, assign=True)
    back = to_llamagen_gpt(model.state_dict())
    assert {k: list(v.shape) for k, v in back.items()} == entry['state_dict']
    assert infer_arch(converted) == GPT_ARCHS[size]


def test_bundles_and_prefixes(small):
    released, _ = small
    expected = convert_llamagen_gpt(released)
    ema = {k: v + 1 for k, v in released.items()}
    wrapped = {f'module.{k}': v for k, v in released.items()}
    vq = {'encoder.conv_in.weight': torch.zeros(1)}
    assert same(convert_llamagen_gpt({'model': released, 'optimizer': {}, 'steps': 3}), expected)
    assert same(convert_llamagen_gpt({'module': wrapped}), expected)
    assert same(convert_llamagen_gpt({'_orig_mod.' + k: v for k, v in wrapped.items()}), expected)
    # a GEAR stage-1 bundle: 'ar' is the AR, 'ema' its EMA; the tokenizer entries are skipped
    gear_bundle = {'vq': vq, 'vq_ema': vq, 'ar': wrapped, 'ema': ema, 'projectors': {},
                   'discriminator': {}}
    assert same(convert_llamagen_gpt(gear_bundle), expected)
    ema_expected = convert_llamagen_gpt(ema)
    assert same(convert_llamagen_gpt(gear_bundle, key='ema'), ema_expected)
    assert same(convert_llamagen_gpt(gear_bundle, prefer_ema=True), ema_expected)
    # recomputed / inference-only buffers are dropped
    extra = dict(released, freqs_cis=torch.zeros(17, 8, 2),
                 **{'layers.0.attention.kv_cache.k_cache': torch.zeros(1)})
    assert same(convert_llamagen_gpt(extra), expected)
    with pytest.raises(KeyError, match='nope'):
        convert_llamagen_gpt({'model': released}, key='nope')
    with pytest.raises(KeyError, match='no GPT state dict'):
        convert_llamagen_gpt({'vq': vq})


def test_unknown_keys_are_named(small):
    released, _ = small
    bad = dict(released, **{'layers.0.attention.wq.weight': torch.zeros(1),
                            'foo.bar': torch.zeros(1)})
    with pytest.raises(ValueError, match=r'2 unknown keys.*foo\.bar.*layers\.0\.attention\.wq\.'):
        convert_llamagen_gpt(bad)
    with pytest.raises(ValueError, match='foo.bar'):
        to_llamagen_gpt({'foo.bar': torch.zeros(1)})


def test_arch_translation(small):
    released, arch = small
    kwargs = gpt_arch_from_llamagen(arch)
    assert kwargs['ffn_multiple_of'] == 256 and 'multiple_of' not in kwargs and 'rope' not in kwargs
    with pytest.raises(ValueError, match='2D RoPE'):
        gpt_arch_from_llamagen(dict(arch, rope='1d'))
    with pytest.raises(ValueError, match='pass n_head'):
        infer_arch(convert_llamagen_gpt(released))
    inferred = infer_arch(convert_llamagen_gpt(released), n_head=4, block_size=16)
    assert inferred == dict(dim=64, n_layer=3, n_head=4, vocab_size=64, block_size=16,
                            num_classes=10, cls_token_num=1)


def test_cli_writes_sha_named_file(tmp_path, small):
    released, _ = small
    src = tmp_path / 'c2i_small.pt'
    ema = {k: v + 0.5 for k, v in released.items()}
    torch.save({'ar': {f'module.{k}': v for k, v in released.items()}, 'ema': ema,
                'vq': {'encoder.conv_in.weight': torch.zeros(1)}, 'steps': 10}, src)
    result = subprocess.run(
        [sys.executable, 'tools/model_converters/llamagen_gpt.py', str(src),
         str(tmp_path / 'out' / 'gear-ar-small.pth'), '--key', 'ema', '--n-head', '4',
         '--block-size', '16'],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    files = list((tmp_path / 'out').iterdir())
    assert len(files) == 1  # no temporary file left behind
    match = re.fullmatch(r'gear-ar-small-([0-9a-f]{8})\.pth', files[0].name)
    assert match, files[0].name
    assert hashlib.sha256(files[0].read_bytes()).hexdigest()[:8] == match.group(1)
    ckpt = torch.load(files[0], weights_only=True)
    assert ckpt['schema_version'] == 1
    model = LlamaGenGPT(**ckpt['arch'])
    model.load_state_dict(ckpt['state_dict'], strict=True)
    assert same(ckpt['state_dict'], ema)
