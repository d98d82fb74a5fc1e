"""``gear.apis.load_tokenizer(NAME)`` / ``load_generator(NAME)`` through a test index whose files
a local HTTP server serves: the golden fixtures reproduce their tensors by name, an official GEAR
bundle gives ``vq_ema`` by default, converted files are cached (no second download or
conversion; a corrupt one is rebuilt), a LlamaGen-style GPT becomes a sampling
FrozenTokenizerAR, and wrong-family / wrong-stage / unknown names fail clearly."""
import argparse
import glob
import hashlib
import io
import os
import os.path as osp

import pytest
import torch

import gear.apis as G
from gear.apis import zoo
from gear.models.converters.llamagen_vq import convert_llamagen_vq, to_llamagen_vq
from gear.utils.checkpoint import CheckpointError

from ..conftest import golden_file
from ..zoo_server import ZooServer, entry, write_index

TOK_CFG = 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'
AR_CFG = 'configs/ar/baseline_vq_tiny_fashionmnist.py'
SMALL = dict(vq='vq_small.pt', lfq='lfq_small.pt', ibq='ibq_small.pt')


def _bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture(scope='module')
def fixtures(golden_dir):
    return {name: torch.load(golden_file(golden_dir, f), weights_only=True)
            for name, f in dict(SMALL, gpt='ar_small.pt').items()}


@pytest.fixture(scope='module')
def bundle(fixtures):
    """An official-style GEAR bundle whose vq and vq_ema differ."""
    vq = fixtures['vq']['state_dict']
    vq_ema = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
              for k, v in vq.items()}
    ar = fixtures['gpt']['state_dict']
    return dict(vq=vq, vq_ema=vq_ema, ar=ar, ema=ar, projectors={'0.weight': torch.ones(2, 2)},
                discriminator={'w': torch.ones(1)}, optimizer_vq={'state': {}},
                optimizer_ar={'state': {}}, args=argparse.Namespace(tau=0.1, lam=0.5), steps=7)


@pytest.fixture
def server(fixtures, bundle):
    with ZooServer() as s:
        for family in SMALL:
            s.files[f'/{family}.pt'] = _bytes(fixtures[family])
        s.files['/gear-bundle.pt'] = _bytes(bundle)
        s.hub_file('org/gpt', 'c2i_small.pt', _bytes({'model': fixtures['gpt']['state_dict'],
                                                      'arch': fixtures['gpt']['arch']}))
        yield s


@pytest.fixture
def cache(tmp_path, monkeypatch, server):
    sha = {p: hashlib.sha256(b).hexdigest() for p, b in server.files.items()}
    entries = [entry(f't-{f}', f, 'pretrain', TOK_CFG, {'URL': server.url(f'/{f}.pt')},
                     sha256=sha[f'/{f}.pt']) for f in SMALL]
    entries += [
        entry('t-bundle', 'vq', 'gear', TOK_CFG, {'URL': server.url('/gear-bundle.pt')},
              key='vq_ema'),
        entry('t-wrong', 'ibq', 'pretrain', TOK_CFG, {'URL': server.url('/lfq.pt')}),
        entry('t-c2i', 'gpt', 'ar', AR_CFG, {'Hub': 'org/gpt', 'Filename': 'c2i_small.pt',
                                             'Revision': 'main'}, key='model', Tokenizer='t-vq'),
    ]
    monkeypatch.setenv('GEAR_MODEL_INDEX', write_index(tmp_path / 'metafile.yml', entries))
    monkeypatch.setenv('GEAR_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setenv('HF_ENDPOINT', server.endpoint)
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    return tmp_path / 'cache'


@pytest.mark.parametrize('family', list(SMALL))
def test_golden_fixtures_load_by_name_and_reproduce_their_tensors(cache, fixtures, family):
    fixture = fixtures[family]
    tokenizer = G.load_tokenizer(f't-{family}')
    with torch.no_grad():
        recon, q = tokenizer(fixture['input'])
    assert torch.equal(q.indices.flatten(1), fixture['indices'])
    torch.testing.assert_close(recon, fixture['recon'], rtol=1e-5, atol=1e-5)
    (converted, ) = glob.glob(str(cache / 'converted' / f't-{family}-*.pth'))
    assert osp.basename(converted) == f't-{family}-{_sha(converted)[:8]}.pth'


def _sha(path) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def _same(module, released_sd) -> bool:
    expected = convert_llamagen_vq({'model': released_sd})
    return all(torch.equal(module.state_dict()[k], v) for k, v in expected.items())


def test_an_official_bundle_gives_vq_ema_by_default(cache, bundle, server):
    tokenizer = G.load_tokenizer('t-bundle')
    assert _same(tokenizer, bundle['vq_ema']) and not _same(tokenizer, bundle['vq'])
    assert tokenizer.zoo_info['key'] == 'vq_ema'
    online = G.load_tokenizer('t-bundle', key='vq')
    assert _same(online, bundle['vq']) and online.zoo_info['key'] == 'vq'
    names = sorted(osp.basename(p) for p in glob.glob(str(cache / 'converted' / '*.pth')))
    assert [n.rsplit('-', 1)[0] for n in names] == ['t-bundle', 't-bundle.vq']
    assert server.requests[('GET', '/gear-bundle.pt')] == 1  # the second key converts the cache


def test_the_converted_cache_is_reused_and_a_corrupt_one_rebuilt(cache, fixtures, server,
                                                                  monkeypatch):
    G.load_tokenizer('t-vq')
    (converted, ) = glob.glob(str(cache / 'converted' / 't-vq-*.pth'))
    calls = []
    real = zoo.convert_tokenizer_file
    monkeypatch.setattr(zoo, 'convert_tokenizer_file', lambda *a: calls.append(a) or real(*a))
    os.remove(glob.glob(str(cache / 'downloads' / 't-vq' / '*'))[0])  # reuse needs no source
    G.load_tokenizer('t-vq')
    assert calls == [] and server.requests[('GET', '/vq.pt')] == 1
    with open(converted, 'r+b') as f:  # corrupt the cached converted file in place
        f.seek(osp.getsize(converted) // 2)
        f.write(b'\0' * 64)
    tokenizer = G.load_tokenizer('t-vq')
    assert len(calls) == 1 and server.requests[('GET', '/vq.pt')] == 2  # rebuilt from a new copy
    (rebuilt, ) = glob.glob(str(cache / 'converted' / 't-vq-*.pth'))
    assert osp.basename(rebuilt) == f't-vq-{_sha(rebuilt)[:8]}.pth'
    with torch.no_grad():
        torch.testing.assert_close(tokenizer(fixtures['vq']['input'])[0], fixtures['vq']['recon'],
                                   rtol=1e-5, atol=1e-5)


def test_a_llamagen_gpt_by_name_is_a_generator_with_its_tokenizer(cache, fixtures, server):
    model = G.load_generator('t-c2i')
    assert type(model).__name__ == 'FrozenTokenizerAR'
    assert model.zoo_info['tokenizer'] == 't-vq' and model.zoo_info['key'] == 'model'
    gpt = fixtures['gpt']
    for prior in (model.prior, model.prior_ema.module):  # the AR and its EMA, loaded strictly
        with torch.no_grad():
            logits = prior.ar(gpt['tokens'][:, :-1], gpt['labels']).logits
        torch.testing.assert_close(logits, gpt['logits'], rtol=1e-5, atol=1e-5)
    images = G.sample(model, [0, 1], seed=0, top_k=8)
    assert images.dtype == torch.uint8 and images.shape == (2, 8, 8, 3)
    again = G.load_generator('t-c2i')  # converted files reused: no second request
    assert server.requests[('GET', '/org/gpt/resolve/main/c2i_small.pt')] == 1
    assert torch.equal(G.sample(again, [0, 1], seed=0, top_k=8), images)


def test_wrong_family_or_stage_fails_naming_the_entry_or_file(cache, tmp_path, fixtures):
    with pytest.raises(CheckpointError, match=r"'t-c2i' \(c2i_small.pt\) is a gpt generator "
                                              r'\(stage ar\), not a tokenizer'):
        G.load_tokenizer('t-c2i')
    with pytest.raises(CheckpointError, match=r"'t-vq' \(vq.pt\) is a vq tokenizer .*"
                                              'use load_tokenizer'):
        G.load_generator('t-vq')
    with pytest.raises(CheckpointError, match=r"'t-wrong': .*lfq.pt holds a lfq tokenizer "
                                              r'\(LFQTokenizer\); the index says ibq'):
        G.load_tokenizer('t-wrong')
    assert not glob.glob(str(cache / 'converted' / 't-wrong*'))  # nothing cached for it
    tok = G.load_tokenizer('t-vq')
    path = tok.zoo_info['file']  # the converted file: a gear tokenizer weights file
    with pytest.raises(CheckpointError, match=f'{path} is a tokenizer weights file with no AR'):
        G.load_generator(str(path))
    released = tmp_path / 'vq_released.pt'
    torch.save({'model': to_llamagen_vq(tok.state_dict())}, released)
    with pytest.raises(CheckpointError, match=f'{released} is a released vq tokenizer checkpoint'):
        G.load_generator(str(released))


def test_an_unknown_name_suggests_close_ones(cache):
    with pytest.raises(FileNotFoundError, match=r"'t-vqq' is neither an existing file nor a "
                                                r"model-zoo name; did you mean 't-vq'"):
        G.load_tokenizer('t-vqq')
    with pytest.raises(FileNotFoundError, match="did you mean 't-c2i'"):
        G.load_generator('t-c2j')


def test_every_entry_fits_the_config_the_index_names(golden_dir):
    """The config an entry names builds the module that entry's released file loads into: the
    released names and shapes (``released_state_dict_shapes.json``, as meta tensors) convert and
    load strictly into the config's tokenizer (tokenizer entries) or AR (GPT entries)."""
    import json

    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from gear.models.converters.llamagen_gpt import convert_llamagen_gpt
    from gear.models.converters.tokenizers import convert_tokenizer
    from gear.registry import AR_BACKBONES, TOKENIZERS
    from gear.utils.model_index import load_index
    shapes = json.loads(golden_file(golden_dir, 'released_state_dict_shapes.json').read_text())
    release = dict(vq='VQ-16', lfq='LFQ-16', ibq='IBQ-16')
    for name, e in load_index().items():
        model_cfg = Config.fromfile(e.config).model
        key = (f"LlamaGen-{e.metadata['Architecture']['size']}" if e.family == 'gpt'
               else release[e.family])
        released = {k: torch.empty(s, device='meta') for k, s in shapes[key]['state_dict'].items()}
        with DefaultScope.overwrite_default_scope('gear'), torch.device('meta'):
            if e.family == 'gpt':
                module, sd = AR_BACKBONES.build(model_cfg.prior.ar), convert_llamagen_gpt(released)
            else:
                module = TOKENIZERS.build(model_cfg.tokenizer)
                family, sd = convert_tokenizer(released)
                assert family == e.family, name
        try:
            module.load_state_dict(sd, strict=True, assign=True)
        except RuntimeError as err:
            raise AssertionError(f'{name}: {e.config} does not fit {key}: {err}') from err
