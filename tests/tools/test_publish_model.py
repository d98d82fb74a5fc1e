"""tools/publish_model.py (``gear.apis.publish``): a release file named by its sha256, without
optimizer state, with the EMA weights and the arch, that loads back; non-finite weights refused
with nothing written."""
import hashlib
import os
import os.path as osp

import pytest
import torch
import yaml
from mmengine.config import Config

import gear.apis as G
from gear.apis.publish import publish_model
from gear.utils.checkpoint import save_weights

from ..apis.test_sampling import GEAR_ARCH, build_trained, write_weights
from .test_sample import load_tool


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    model = build_trained(GEAR_ARCH)
    run = tmp_path_factory.mktemp('runs') / 'gear_vq_run'
    run.mkdir()
    return model, write_weights(model, run / 'final.pth', GEAR_ARCH)


def _sha(path) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_a_weights_file_is_published_with_its_ema_and_loads_back(trained, tmp_path, capsys):
    model, final = trained
    path = load_tool('publish_model').main([final, '--out', str(tmp_path / 'rel')])
    assert osp.basename(path) == f'gear-vq-run-{_sha(path)[:8]}.pth'
    printed = yaml.safe_load(capsys.readouterr().out)
    (entry, ) = printed['Models']
    assert entry['SHA256'] == _sha(path) and entry['Metadata']['Size'] == osp.getsize(path)
    assert (entry['Metadata']['Family'], entry['Metadata']['Stage']) == ('vq', 'gear')
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {'schema_version', 'arch', 'state_dict'}
    expected = model.state_dict()
    assert ckpt['state_dict'].keys() == expected.keys()
    assert any(k.startswith('tokenizer_ema.module.') for k in expected)
    assert any(k.startswith('prior_ema.module.') for k in expected)
    assert all(torch.equal(ckpt['state_dict'][k], v) for k, v in expected.items())
    G.load_model(path)
    tokenizer = G.load_tokenizer(path)  # the EMA tokenizer
    ema = model.tokenizer_ema.module.state_dict()
    assert all(torch.equal(tokenizer.state_dict()[k], v) for k, v in ema.items())


def test_the_recorded_datasets_are_kept(trained, tmp_path):
    """A release keeps ``arch['data']`` (evaluation's reference) from the weights file, or
    reads it from the run's config."""
    model, _ = trained
    data = dict(test=dict(type='FashionMNIST', data_root='/d', split='test', resolution=16))
    src = tmp_path / 'final.pth'
    save_weights(model.state_dict(), str(src), arch=dict(model=GEAR_ARCH, data=data))
    path, _ = publish_model(str(src), str(tmp_path / 'rel'))
    assert torch.load(path, weights_only=True)['arch']['data'] == data
    config = str(tmp_path / 'cfg.py')
    Config(dict(model=GEAR_ARCH, test_dataloader=dict(dataset=data['test']))).dump(config)
    path, _ = publish_model(str(src), str(tmp_path / 'rel2'), config=config)
    assert torch.load(path, weights_only=True)['arch']['data'] == data


def test_a_training_checkpoint_loses_its_optimizer_state(trained, tmp_path):
    model, _ = trained
    run = tmp_path / 'run'
    run.mkdir()
    ckpt = dict(meta=dict(iter=5), message_hub={'log': 1},
                state_dict={f'module.{k}': v for k, v in model.state_dict().items()},
                optimizer={'tokenizer': {'state': {0: {'exp_avg': torch.ones(3)}}}})
    torch.save(ckpt, run / 'iter_5.pth')
    config = str(tmp_path / 'cfg.py')
    Config(dict(model=GEAR_ARCH)).dump(config)
    path, entry = publish_model(str(run / 'iter_5.pth'), str(tmp_path / 'rel'), config=config)
    assert osp.basename(path) == f'run-{_sha(path)[:8]}.pth' and entry['SHA256'] == _sha(path)
    out = torch.load(path, weights_only=True)
    assert set(out) == {'schema_version', 'arch', 'state_dict'}
    assert out['arch']['model']['type'] == 'GEAR'
    expected = model.state_dict()
    assert out['state_dict'].keys() == expected.keys()  # unwrapped, EMA kept
    assert all(torch.equal(out['state_dict'][k], v) for k, v in expected.items())


def test_non_finite_weights_are_refused_and_nothing_is_written(trained, tmp_path):
    model, _ = trained
    state = model.state_dict()
    bad_key = next(k for k in state if k.startswith('prior_ema.module.') and 'weight' in k)
    state[bad_key] = state[bad_key].clone()
    state[bad_key].view(-1)[3] = float('nan')
    src = tmp_path / 'final.pth'
    write_weights(type('M', (), {'state_dict': lambda self: state})(), src, GEAR_ARCH)
    out = tmp_path / 'rel'
    with pytest.raises(ValueError, match=f'{bad_key} has 1 non-finite value'):
        publish_model(str(src), str(out), name='bad')
    assert not out.exists() or os.listdir(out) == []


def test_a_tokenizer_weights_file_publishes_and_loads_with_load_tokenizer(trained, tmp_path):
    model, final = trained
    from gear.utils.checkpoint import save_weights
    src = tmp_path / 'tok.pth'
    save_weights(model.tokenizer.state_dict(), str(src), arch=dict(GEAR_ARCH['tokenizer']))
    path, entry = publish_model(str(src), str(tmp_path), name='Tiny_Tok')
    assert osp.basename(path) == f'tiny-tok-{_sha(path)[:8]}.pth'
    assert entry['Metadata']['Stage'] == 'warmup' and entry['Metadata']['Family'] == 'vq'
    tokenizer = G.load_tokenizer(path)
    assert all(torch.equal(tokenizer.state_dict()[k], v)
               for k, v in model.tokenizer.state_dict().items())
