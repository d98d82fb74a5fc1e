"""Every released architecture of ``released_state_dict_shapes.json`` (VQ-16, LFQ-16, IBQ-16,
LlamaGen GPT-B / -L / -XL): a state dict of random tensors under the released names and shapes,
packed as its release packs it, converts into a gear module through the public loaders and runs
forward. (The golden fixtures prove the function at reduced width; this proves the full-size
files load and compute.)"""
import json

import pytest
import torch

from gear.apis import load_tokenizer
from gear.models.ar import LlamaGenGPT
from gear.models.ar.rope import precompute_freqs_cis_2d
from gear.models.converters.llamagen_gpt import convert_llamagen_gpt, infer_arch

from ..conftest import golden_file

TOKENIZERS = {'VQ-16': 'vq', 'LFQ-16': 'lfq', 'IBQ-16': 'ibq'}


@pytest.fixture(scope='module')
def shapes(golden_dir):
    return json.loads(golden_file(golden_dir, 'released_state_dict_shapes.json').read_text())


def random_state_dict(entry: dict, seed: int) -> dict:
    """Released names and shapes, small random values (a full-depth net stays finite)."""
    gen = torch.Generator().manual_seed(seed)  # uniform: several times faster than randn here
    out = {}
    for name, shape in entry['state_dict'].items():
        if name.endswith('num_batches_tracked'):
            out[name] = torch.zeros(shape, dtype=torch.long)
        elif name.endswith(('norm.weight', 'norm1.weight', 'norm2.weight', 'norm_out.weight')):
            out[name] = torch.ones(shape)
        else:
            out[name] = torch.empty(shape).uniform_(-0.035, 0.035, generator=gen)  # std 0.02
    return out


@pytest.mark.parametrize('release', list(TOKENIZERS))
def test_a_full_size_released_tokenizer_bundle_loads_and_reconstructs(shapes, release, tmp_path):
    """Packed as the official Warmup-* / GEAR-* files are: ``vq`` and ``vq_ema`` beside the
    rest; ``load_tokenizer`` reads the architecture off the shapes and takes ``vq_ema``."""
    live = random_state_dict(shapes[release], seed=0)
    ema = {k: v + 1e-3 if v.is_floating_point() else v for k, v in live.items()}
    path = tmp_path / 'gear-release.pt'
    torch.save({'vq': live, 'vq_ema': ema, 'args': {'vq_model': release}, 'steps': 10}, path)
    tokenizer = load_tokenizer(str(path))
    assert type(tokenizer).__name__ == {'vq': 'VQTokenizer', 'lfq': 'LFQTokenizer',
                                        'ibq': 'IBQTokenizer'}[TOKENIZERS[release]]
    assert sum(v.numel() for v in tokenizer.state_dict().values()) == shapes[release]['num_params']
    torch.testing.assert_close(tokenizer.encoder.conv_in.weight, ema['encoder.conv_in.weight'],
                               rtol=0, atol=0)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        recon, q = tokenizer(x)
    assert recon.shape == x.shape and torch.isfinite(recon).all()
    assert q.indices.numel() == 4 and q.d.shape[-1] == 16384  # 2 x 2 tokens over 16384 codes


@pytest.mark.parametrize('size', ['B', 'L', 'XL'])
def test_a_full_size_llamagen_gpt_converts_and_predicts(shapes, size):
    """LlamaGen's ``{'model': ...}`` packing; the architecture read off the shapes; one
    class-conditional forward over 8 tokens."""
    released = random_state_dict(shapes[f'LlamaGen-{size}'], seed=1)
    converted = convert_llamagen_gpt({'model': released})
    del released
    with torch.device('meta'):
        model = LlamaGenGPT(**infer_arch(converted))
    model.load_state_dict(converted, strict=True, assign=True)  # the weights, no second copy
    model.freqs_cis = precompute_freqs_cis_2d(*model.rope_args)  # recomputed, never saved
    assert model.num_params() == shapes[f'LlamaGen-{size}']['num_params']
    tokens = torch.randint(0, 16384, (1, 8))
    with torch.no_grad():
        out = model(tokens, torch.tensor([3]))
    assert out.logits.shape == (1, 9, 16384) and torch.isfinite(out.logits).all()
