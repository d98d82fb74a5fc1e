"""gear.apis loading and sampling: checkpoints rebuild the same model, generation is reproducible.

- ``load_model`` rebuilds GEAR / FrozenTokenizerAR from a weights file (its ``arch``) without
  re-running stage-to-stage initialisation, and a training checkpoint from its config;
- ``generator_parts`` picks the EMA AR and tokenizer;
- ``sample_images`` is fixed by its seed (batch i seeded seed + i), the KV cache and compiling
  the decode step change nothing;
- ``save_npz`` writes the ADM layout; bad files fail naming the file.
"""
import copy
import types

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub

from gear.apis.loading import load_model
from gear.models.generator import generator_parts
from gear.evaluation.sampling import (SamplingSettings, class_balanced_labels, sample_images,
                                save_npz)
from gear.registry import MODELS
from gear.utils.checkpoint import CheckpointError, save_weights

from ..models.test_gear_invariants import TINY_GEAR

# TINY_GEAR with a 4x4 token grid (16x16 images, downsampling 4): 16 decoding steps, not 64.
TINY = copy.deepcopy(TINY_GEAR)
TINY['tokenizer']['ch_mult'] = (1, 2, 2)
TINY['prior']['ar']['block_size'] = 16
TINY['teachers']['effnet']['grid_size'] = 4
# Stage-to-stage links that point nowhere: load_model must not follow them.
GONE = '/nonexistent/stage0/final.pth'
GEAR_ARCH = dict(TINY, init_from=[dict(checkpoint=GONE, modules=dict(tokenizer='tokenizer'))])
STAGE2_ARCH = dict(type='FrozenTokenizerAR', tokenizer=TINY['tokenizer'],
                   init_from=[dict(checkpoint=GONE, modules={'tokenizer_ema.module': 'tokenizer',
                                                             'prior': 'prior'})],
                   prior=TINY['prior'], teachers=TINY['teachers'], ema_decay=0.9)


def _perturb(module: torch.nn.Module, scale: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * scale)


def build_trained(cfg: dict, seed: int = 0):
    """A tiny model whose weights look trained: non-zero AR head, EMA != online weights."""
    torch.manual_seed(seed)
    MessageHub.get_instance('gear-apis-sampling').update_info('iter', 0)
    model = MODELS.build(copy.deepcopy(cfg))  # init_weights not called: init_from not followed
    for prior in (model.prior, model.prior_ema.module):
        with torch.no_grad():
            prior.ar.output.weight.normal_(0, 0.5)
    _perturb(model.prior_ema.module, 0.05)
    if hasattr(model, 'tokenizer_ema'):
        _perturb(model.tokenizer_ema.module, 0.05)
    return model.eval()


def write_weights(model, path, arch_model) -> str:
    save_weights(model.state_dict(), str(path), arch=dict(model=arch_model, iter=7))
    return str(path)


@pytest.fixture(scope='module')
def gear(tmp_path_factory):
    model = build_trained(GEAR_ARCH)
    return model, write_weights(model, tmp_path_factory.mktemp('gear') / 'final.pth', GEAR_ARCH)


@pytest.fixture(scope='module')
def stage2(tmp_path_factory):
    model = build_trained(STAGE2_ARCH, seed=1)
    return model, write_weights(model, tmp_path_factory.mktemp('s2') / 'final.pth', STAGE2_ARCH)


@pytest.fixture(scope='module')
def loaded(gear):
    return load_model(gear[1])


def same_state(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_load_model_round_trips_gear_without_rerunning_init(gear, loaded):
    model, _ = gear
    assert type(loaded).__name__ == 'GEAR' and not loaded.training
    assert same_state(model, loaded)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cond = torch.tensor([1, 4])
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))  # EMA tokenizer reconstruction
        tokens = torch.randint(0, 16, (2, 15))
        for name in ('prior', 'prior_ema'):
            ours, theirs = [getattr(m, name) for m in (model, loaded)]
            ours = ours.module if name == 'prior_ema' else ours
            theirs = theirs.module if name == 'prior_ema' else theirs
            assert torch.equal(ours.ar(tokens, cond).logits, theirs.ar(tokens, cond).logits)


def test_load_model_round_trips_frozen_tokenizer_ar(stage2):
    model, path = stage2
    loaded = load_model(path)
    assert type(loaded).__name__ == 'FrozenTokenizerAR' and same_state(model, loaded)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x, torch.tensor([0, 9])), loaded(x, torch.tensor([0, 9])))


def test_load_model_reads_a_training_checkpoint_with_its_config(gear, tmp_path):
    model, _ = gear
    path = tmp_path / 'iter_7.pth'
    torch.save(dict(meta=dict(iter=7), state_dict=model.state_dict(), optimizer={},
                    message_hub=types.SimpleNamespace(x=1)), path)  # not weights_only-readable
    config = tmp_path / 'cfg.py'
    config.write_text(f'model = {GEAR_ARCH!r}\n')
    with pytest.raises(CheckpointError, match=r'iter_7\.pth'):
        load_model(str(path))  # no config: it cannot know the model
    assert same_state(model, load_model(str(path), str(config)))


def test_load_model_errors_name_the_file(gear, tmp_path):
    model, _ = gear
    with pytest.raises(CheckpointError, match=r'not found: .*nope\.pth'):
        load_model(str(tmp_path / 'nope.pth'))
    bare = write_weights(model, tmp_path / 'bare.pth', arch_model=None)
    with pytest.raises(CheckpointError, match=r'bare\.pth has no model config .*arch'):
        load_model(bare)
    wrong = write_weights(model, tmp_path / 'wrong.pth', STAGE2_ARCH)
    with pytest.raises(CheckpointError, match=r'wrong\.pth does not match FrozenTokenizerAR'):
        load_model(wrong)


def test_generator_parts_pick_the_ema_modules(loaded, stage2):
    ar, tok = generator_parts(loaded)
    assert ar is loaded.prior_ema.module.ar and tok is loaded.tokenizer_ema.module
    ar, tok = generator_parts(loaded, use_ema=False)
    assert ar is loaded.prior.ar and tok is loaded.tokenizer
    s2 = stage2[0]
    ar, tok = generator_parts(s2)
    assert ar is s2.prior_ema.module.ar and tok is s2.tokenizer
    assert generator_parts(s2, use_ema=False)[0] is s2.prior.ar
    with pytest.raises(TypeError, match='Linear cannot generate'):
        generator_parts(torch.nn.Linear(2, 2))


def test_class_balanced_labels():
    labels = class_balanced_labels(3, 2)
    assert labels.dtype == torch.long and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(torch.bincount(class_balanced_labels(10, 50)), torch.full((10,), 50))
    with pytest.raises(ValueError):
        class_balanced_labels(0, 5)


def test_sample_images_is_reproducible_and_cache_agnostic(loaded):
    labels = torch.tensor([0, 3, 3, 9, 5, 1])
    s = SamplingSettings(cfg_scale=2.0, top_k=8, temperature=0.9, seed=5, batch_size=4)
    images = sample_images(loaded, labels, s)
    assert images.shape == (6, 16, 16, 3) and images.dtype == torch.uint8
    assert torch.equal(images, sample_images(loaded, labels, s))
    assert torch.equal(images, sample_images(loaded, labels, SamplingSettings(
        **(s.to_dict() | dict(use_cache=False)))))
    assert not torch.equal(images, sample_images(loaded, labels, SamplingSettings(
        **(s.to_dict() | dict(seed=6)))))
    # batch i is seeded seed + i: the first batch alone gives the same images
    assert torch.equal(images[:4], sample_images(loaded, labels[:4], s))
    online = sample_images(loaded, labels, SamplingSettings(**(s.to_dict() | dict(use_ema=False))))
    assert not torch.equal(images, online)
    # compiled decode steps (dynamo's capture, eager kernels: no C++ build here) change nothing
    from torch._dynamo.utils import counters
    graphs = counters['stats']['unique_graphs']
    compiled = SamplingSettings(**(s.to_dict() | dict(compile=dict(backend='eager'))))
    assert torch.equal(images, sample_images(loaded, labels, compiled))
    assert counters['stats']['unique_graphs'] > graphs  # it did compile


def test_sample_images_decodes_tokens_to_uint8(loaded):
    from gear.models.ar import generate

    s = SamplingSettings(seed=2, batch_size=8)
    labels = torch.tensor([4, 7])
    images = sample_images(loaded, labels, s)
    ar, tok = generator_parts(loaded)
    tokens = generate(ar, labels, generator=torch.Generator().manual_seed(2))  # (2, 16)
    with torch.no_grad():
        x = tok.decode_indices(tokens.view(2, 4, 4))  # (2, 3, 16, 16)
    expect = ((x + 1) * 127.5).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    assert torch.equal(images, expect)
    with pytest.raises(ValueError, match=r'labels must be in \[0, 10\)'):
        sample_images(loaded, torch.tensor([10]), s)


def test_sample_images_from_frozen_tokenizer_ar(stage2):
    images = sample_images(stage2[0], torch.tensor([2, 2, 8]), SamplingSettings(batch_size=2))
    assert images.shape == (3, 16, 16, 3) and images.dtype == torch.uint8


def test_save_npz_writes_the_adm_layout(tmp_path):
    images = torch.randint(0, 256, (5, 8, 8, 3), dtype=torch.uint8)
    labels = torch.tensor([0, 0, 1, 1, 2])
    path = tmp_path / 'samples.npz'
    save_npz(images, labels, str(path))
    with np.load(path) as f:
        assert sorted(f.files) == ['arr_0', 'arr_1']
        assert f['arr_0'].dtype == np.uint8 and np.array_equal(f['arr_0'], images.numpy())
        assert f['arr_1'].shape == (5,) and f['arr_1'].tolist() == [0, 0, 1, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['samples.npz']  # no temporary left
    with pytest.raises(ValueError, match='uint8'):
        save_npz(images.float(), labels, str(tmp_path / 'bad.npz'))
    with pytest.raises(ValueError, match=r'labels must be \(5,\)'):
        save_npz(images, labels[:3], str(tmp_path / 'bad.npz'))
