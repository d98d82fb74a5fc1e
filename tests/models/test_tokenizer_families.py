"""Every family's released checkpoint reaches gear through one path: the family is told from
the key names, Lightning checkpoints default to their EMA weights, ``init_from`` and
``load_tokenizer`` take them, and the converter CLI writes a file that loads back."""
import json
import subprocess
import sys

import pytest
import torch

from gear.apis import load_tokenizer
from gear.models.converters import checkpoint_family, convert_tokenizer
from gear.models.init_from import source_state_dict

from ..conftest import REPO, golden_file

RELEASED = {'VQ-16': 'vq', 'LFQ-16': 'lfq', 'IBQ-16': 'ibq'}
SMALL = {'lfq': 'lfq_small.pt', 'ibq': 'ibq_small.pt'}


@pytest.fixture(scope='module')
def shapes(golden_dir):
    return json.loads(golden_file(golden_dir, 'released_state_dict_shapes.json').read_text())


def meta(entry):
    """Zero-size stand-ins with the released names (detection reads names only)."""
    return {k: torch.empty(0) for k in entry['state_dict']}


@pytest.mark.parametrize('name', list(RELEASED))
def test_the_family_is_told_from_the_names_in_every_layout(shapes, name):
    sd = meta(shapes[name])
    family = RELEASED[name]
    assert checkpoint_family(sd) == family
    assert checkpoint_family({'state_dict': {f'module.{k}': v for k, v in sd.items()}}) == family
    gear_bundle = {'vq': sd, 'vq_ema': sd, 'ema': meta(shapes['LlamaGen-B']), 'steps': 1}
    assert checkpoint_family(gear_bundle) == family
    assert checkpoint_family(gear_bundle, key='vq_ema') == family


def test_an_ar_checkpoint_is_not_a_tokenizer(shapes):
    with pytest.raises(KeyError, match='no VQ / LFQ / IBQ tokenizer weights'):
        checkpoint_family({'model': meta(shapes['LlamaGen-B'])})
    with pytest.raises(KeyError, match="no key 'vq_ema'"):
        checkpoint_family({'vq': meta(shapes['VQ-16'])}, key='vq_ema')


def lightning(fixture):
    """The fixture's weights as the live copy of a Lightning checkpoint whose LitEma shadows
    are the same weights + 1 (so which copy was read shows)."""
    live = dict(fixture['state_dict'])
    ema = {'model_ema.' + k.replace('.', ''): v + 1 for k, v in live.items()}
    return {'state_dict': {**live, **ema, 'model_ema.decay': torch.tensor(0.999),
                           'model_ema.num_updates': torch.tensor(10)},
            'global_step': 10, 'epoch': 0}


@pytest.mark.parametrize('family', list(SMALL))
def test_lightning_checkpoints_default_to_their_ema_weights(golden_dir, family):
    fixture = torch.load(golden_file(golden_dir, SMALL[family]), weights_only=True)
    ckpt = lightning(fixture)
    got_family, ema = convert_tokenizer(ckpt)
    assert got_family == family
    _, live = convert_tokenizer(ckpt, prefer_ema=False)
    name = 'encoder.conv_in.weight'
    torch.testing.assert_close(ema[name], fixture['state_dict'][name] + 1, rtol=0, atol=0)
    torch.testing.assert_close(live[name], fixture['state_dict'][name], rtol=0, atol=0)


@pytest.mark.parametrize('family', list(SMALL))
def test_init_from_and_load_tokenizer_read_a_released_file(golden_dir, tmp_path, family):
    """A released-format file (raw released names) goes through ``init_from`` under
    ``tokenizer.`` and through ``load_tokenizer`` to the golden reconstruction (an IBQ codec's
    attention is placed by level, so the inferred 256 px arch computes the same function)."""
    fixture = torch.load(golden_file(golden_dir, SMALL[family]), weights_only=True)
    path = tmp_path / f'{family}.pt'
    torch.save(dict(fixture['state_dict']), path)
    sd = source_state_dict(str(path))
    assert sd and all(k.startswith('tokenizer.') for k in sd)
    tokenizer = load_tokenizer(str(path))  # the architecture read off the shapes
    with torch.no_grad():
        recon, q = tokenizer(fixture['input'])
    assert torch.equal(q.indices.flatten(1), fixture['indices'])
    torch.testing.assert_close(recon, fixture['recon'], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('family', list(SMALL))
def test_the_converter_cli_writes_a_file_that_loads_back(golden_dir, tmp_path, family):
    fixture = torch.load(golden_file(golden_dir, SMALL[family]), weights_only=True)
    src = tmp_path / f'{family}.ckpt'
    torch.save(lightning(fixture), src)
    result = subprocess.run(
        [sys.executable, 'tools/model_converters/tokenizer.py', str(src),
         str(tmp_path / 'out' / f'{family}.pth'), '--resolution', '32'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f'{family}:')
    (out, ) = (tmp_path / 'out').iterdir()
    tokenizer = load_tokenizer(str(out))
    weight = tokenizer.state_dict()['encoder.conv_in.weight']
    torch.testing.assert_close(weight, fixture['state_dict']['encoder.conv_in.weight'] + 1)
