"""HFTextEncoder on tiny offline T5 / Qwen3 models (the real transformers code path, no
download): shapes and masks, right padding, frozen-ness, the embedding cache (bit-identical,
read back without running the model, bad entries recomputed, kept apart per encoder) and errors.
"""
import os
import pathlib
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from gear.models.text import HFTextEncoder, write_tiny_text_encoder
from gear.registry import TEXT_ENCODERS

CORPUS = ['a photo of a dress', 'a grey bag on a black background', 'an ankle boot, centered',
          'a small greyscale image of a pair of trousers']
CAPTIONS = ['a grey dress', 'a photo of an ankle boot on a black background', 'bag']
T = 12


@pytest.fixture(scope='module')
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp('text_encoders')
    return {name: write_tiny_text_encoder(str(root / name), family, CORPUS, seed=seed)
            for name, family, seed in [('t5', 't5', 0), ('qwen3', 'qwen3', 0),
                                       ('t5_seed1', 't5', 1), ('t5_copy', 't5', 0)]}


@pytest.fixture(scope='module')
def encoders(dirs):
    return {name: HFTextEncoder(dirs[name], max_length=T) for name in ('t5', 'qwen3')}


def _count_calls(encoder):
    """Batch sizes of the model's forward calls, via a forward hook."""
    calls = []
    encoder.model.register_forward_hook(
        lambda mod, args, kwargs, out: calls.append(kwargs['input_ids'].shape[0]), with_kwargs=True)
    return calls


@pytest.mark.parametrize('name,family,model', [('t5', 't5', 'T5EncoderModel'),
                                               ('qwen3', 'causal', 'Qwen3Model')])
def test_shapes_dtype_and_mask(encoders, name, family, model):
    enc = encoders[name]
    assert (enc.family, type(enc.model).__name__) == (family, model)  # family='auto' resolved
    assert (enc.feature_dim, enc.max_length) == (32, T)
    emb, mask = enc(CAPTIONS)
    assert emb.shape == (3, T, 32) and emb.dtype == torch.float32
    assert mask.shape == (3, T) and mask.dtype == torch.bool
    words = [len(enc.tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(c.lower()))
             for c in CAPTIONS]
    eos = 1 if name == 't5' else 0  # T5 appends </s>
    assert mask.sum(1).tolist() == [min(w + eos, T) for w in words]  # the long one is truncated
    n = mask.sum(1)
    assert torch.equal(mask, torch.arange(T)[None] < n[:, None])  # right padded: a prefix


@pytest.mark.parametrize('name', ['t5', 'qwen3'])
def test_padded_rows_are_exactly_zero(encoders, name):
    emb, mask = encoders[name](CAPTIONS)
    assert (~mask).any()
    assert torch.all(emb[~mask] == 0)  # (P, C)
    assert torch.all(emb[mask].abs().sum(-1) > 0)  # real rows are not


@pytest.mark.parametrize('name', ['t5', 'qwen3'])
def test_a_caption_alone_or_in_a_batch(encoders, name):
    enc = encoders[name]
    alone_emb, alone_mask = enc(['a grey dress'])
    emb, mask = enc(['a photo of an ankle boot on a black background', 'a grey dress'])
    assert torch.equal(mask[1], alone_mask[0])
    torch.testing.assert_close(emb[1], alone_emb[0], rtol=0, atol=1e-6)
    # and the padding changes nothing: the real rows are the model's output on the bare tokens
    ids = enc.tokenizer(['a grey dress'], return_tensors='pt')['input_ids']  # (1, n)
    with torch.no_grad():
        bare = enc.model(input_ids=ids).last_hidden_state[0]  # (n, C)
    torch.testing.assert_close(emb[1, :ids.shape[1]], bare, rtol=0, atol=1e-5)


def test_bfloat16_weights(dirs, encoders):
    enc = HFTextEncoder(dirs['qwen3'], max_length=T, dtype='bfloat16')
    assert {p.dtype for p in enc.parameters()} == {torch.bfloat16}
    emb, mask = enc(CAPTIONS)
    ref, ref_mask = encoders['qwen3'](CAPTIONS)
    assert emb.dtype == torch.float32 and torch.equal(mask, ref_mask)
    assert torch.all(emb[~mask] == 0)
    torch.testing.assert_close(emb, ref, rtol=0.05, atol=0.1)  # bf16 rounding, same model
    assert enc.fingerprint() != encoders['qwen3'].fingerprint()


def test_frozen_and_not_in_the_owner_state_dict(dirs):
    owner = nn.Module()
    owner.head = nn.Linear(32, 2)
    owner.text = HFTextEncoder(dirs['t5'], max_length=T)
    owner.train().to('cpu')
    assert not owner.text.training and not owner.text.model.training
    assert not any(p.requires_grad for p in owner.text.parameters())
    assert sorted(owner.state_dict()) == ['head.bias', 'head.weight']
    owner.load_state_dict(owner.state_dict(), strict=True)
    emb, _ = owner.text(CAPTIONS[:1])
    assert not emb.requires_grad


def test_registry_builds_it(dirs):
    enc = TEXT_ENCODERS.build(dict(type='HFTextEncoder', path=dirs['t5'], family='t5',
                                   max_length=T, local_files_only=True))
    assert isinstance(enc, HFTextEncoder) and enc.max_length == T


# -- the embedding cache ------------------------------------------------------------------------
def _entries(cache_dir):
    return sorted(pathlib.Path(cache_dir).rglob('*.npz'))


@pytest.mark.parametrize('name', ['t5', 'qwen3'])
def test_cache_is_bit_identical_and_skips_the_model(tmp_path, dirs, encoders, name):
    ref_emb, ref_mask = encoders[name](CAPTIONS)
    enc = HFTextEncoder(dirs[name], max_length=T, cache_dir=str(tmp_path))
    calls = _count_calls(enc)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a clean cache warns about nothing
        first = enc(CAPTIONS)  # all misses: one batch of 3
        second = enc(CAPTIONS)  # all hits
        mixed = enc(['a coat', CAPTIONS[1]])  # one miss: a batch of 1
    assert calls == [3, 1]
    assert (enc.cache.hits, enc.cache.misses) == (4, 4)
    for emb, mask in (first, second):
        assert torch.equal(emb, ref_emb) and torch.equal(mask, ref_mask)
    assert torch.equal(mixed[0][1], ref_emb[1]) and torch.equal(mixed[1][1], ref_mask[1])
    assert len(_entries(tmp_path)) == 4
    # another run (a fresh encoder) reads the entries back: the model never runs
    again = HFTextEncoder(dirs[name], max_length=T, cache_dir=str(tmp_path))
    again_calls = _count_calls(again)
    emb, mask = again(CAPTIONS[::-1])
    assert again_calls == []
    assert torch.equal(emb, ref_emb.flip(0)) and torch.equal(mask, ref_mask.flip(0))


def _corrupt(path, how, good):
    if how == 'truncated':
        path.write_bytes(good[:len(good) // 2])
    elif how == 'garbage':
        path.write_bytes(b'not an npz file')
    elif how == 'flipped byte':  # inside the array data: the zip CRC catches it
        data = bytearray(good)
        at = good.index(b'emb.npy') + 200
        data[at] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == 'wrong shape':
        np.savez(path, emb=np.zeros((3, 31), np.float32),
                 caption=np.frombuffer(CAPTIONS[0].encode(), np.uint8))
    elif how == 'other caption':
        with np.load(path) as f:
            emb = f['emb']
        np.savez(path, emb=emb, caption=np.frombuffer(b'something else', np.uint8))


@pytest.mark.parametrize('how', ['truncated', 'garbage', 'flipped byte', 'wrong shape',
                                 'other caption'])
def test_a_bad_entry_is_warned_about_and_recomputed(tmp_path, dirs, encoders, how):
    ref_emb, ref_mask = encoders['t5'](CAPTIONS)
    enc = HFTextEncoder(dirs['t5'], max_length=T, cache_dir=str(tmp_path))
    enc(CAPTIONS)
    path = pathlib.Path(enc.cache.entry_path(enc, CAPTIONS[0]))
    good = path.read_bytes()
    _corrupt(path, how, good)
    calls = _count_calls(enc)
    with pytest.warns(RuntimeWarning, match=path.name):
        emb, mask = enc(CAPTIONS)
    assert calls == [1]  # only the bad entry is recomputed
    assert torch.equal(emb, ref_emb) and torch.equal(mask, ref_mask)
    assert path.read_bytes() == good  # rewritten
    assert not list(pathlib.Path(tmp_path).rglob('*.tmp'))


def test_an_unwritable_cache_warns_once_and_encodes_on(tmp_path, dirs, encoders):
    ref_emb, ref_mask = encoders['t5'](CAPTIONS)
    blocker = tmp_path / 'file'
    blocker.write_text('not a directory')  # the cache dir cannot be created under it
    enc = HFTextEncoder(dirs['t5'], max_length=T, cache_dir=str(blocker / 'cache'))
    with pytest.warns(RuntimeWarning, match=rf'cannot write {blocker}/cache/.*caching stops') as w:
        first = enc(CAPTIONS)
        second = enc(CAPTIONS[::-1])
    assert len([x for x in w if 'cannot write' in str(x.message)]) == 1
    assert enc.cache.writer.failed and enc.cache.misses == 6
    assert torch.equal(first[0], ref_emb) and torch.equal(first[1], ref_mask)
    assert torch.equal(second[0], ref_emb.flip(0))
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')]


def test_cache_is_kept_apart_per_encoder(tmp_path, dirs):
    def namespaces():
        return sorted(p.name for p in pathlib.Path(tmp_path).iterdir())

    enc = HFTextEncoder(dirs['t5'], max_length=T, cache_dir=str(tmp_path))
    enc(CAPTIONS)
    assert namespaces() == [enc.fingerprint()[:16]]
    meta = (tmp_path / enc.fingerprint()[:16] / 'meta.json').read_text()
    for text in (f'"path": "{dirs["t5"]}"', f'"max_length": {T}', '"dtype": "float32"',
                 '"hidden_size": 32'):
        assert text in meta
    # the same weights and tokenizer written elsewhere share the entries (and the fingerprint
    # does not change with the tokenizer's padding state)
    copy = HFTextEncoder(dirs['t5_copy'], max_length=T)
    copy(CAPTIONS)
    assert copy.fingerprint() == enc.fingerprint()
    # other weights, another max_length: other directories
    other_seed = HFTextEncoder(dirs['t5_seed1'], max_length=T, cache_dir=str(tmp_path))
    other_len = HFTextEncoder(dirs['t5'], max_length=T + 1, cache_dir=str(tmp_path))
    other_seed(CAPTIONS)
    other_len(CAPTIONS)
    assert len(namespaces()) == 3
    assert len({enc.fingerprint(), other_seed.fingerprint(), other_len.fingerprint()}) == 3
    assert not torch.equal(other_seed(CAPTIONS)[0], enc(CAPTIONS)[0])


# -- errors -------------------------------------------------------------------------------------
def test_a_missing_path_is_named(tmp_path):
    missing = str(tmp_path / 'no_such_encoder')
    with pytest.raises(OSError, match=r"no_such_encoder'.*local directory.*download"):
        HFTextEncoder(missing)
    hub_id = 'gear-test/absent-model'
    with pytest.raises(OSError, match=rf"'{hub_id}'.*hf download {hub_id}"):
        HFTextEncoder(hub_id, local_files_only=True)


def test_a_caption_that_is_not_a_str_is_named(encoders):
    with pytest.raises(TypeError, match=r'caption 1 is int 7'):
        encoders['t5'](['a dress', 7])
    with pytest.raises(TypeError, match='wrap it in a list'):
        encoders['t5']('a dress')


# -- the CLI ------------------------------------------------------------------------------------
def test_cli_default_corpus_covers_the_demo_captions(tmp_path):
    import importlib.util

    from gear.datasets.caption_sources import fashion_mnist_caption
    root = pathlib.Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(
        'make_tiny_text_encoder', root / 'tools' / 'make_tiny_text_encoder.py')
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main(['--family', 't5', '--out', str(tmp_path / 'enc'), '--seed', '3'])
    enc = HFTextEncoder(str(tmp_path / 'enc'), max_length=16, local_files_only=True)
    captions = {fashion_mnist_caption(label, i) for label in range(10) for i in range(50)}
    ids = enc.tokenizer(sorted(captions))['input_ids']
    assert enc.tokenizer.unk_token_id not in {i for row in ids for i in row}
    assert max(len(row) for row in ids) <= 16  # the t5_tiny config's max_length
