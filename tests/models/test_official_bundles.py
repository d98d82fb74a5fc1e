"""Official GEAR bundles (``vq`` / ``vq_ema`` / ``ar`` / ``ema`` / ``projectors`` /
``discriminator`` / optimiser states / ``args`` / ``steps``) and gear stage files start the
shipped stage configs as the official scripts do: stage 1 takes the tokenizer, its EMA and the
discriminator (``--stage0-init-ckpt``); ar-init takes the stage-1 EMA AR into the AR and its EMA,
the live projectors and the EMA tokenizer (``--ar-init-ckpt``); a bundle read without a key
gives ``vq_ema`` (``--vq-use-ema``)."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from gear.apis import load_tokenizer
from gear.models.converters.gear_official import convert_official_bundle, is_official_bundle
from gear.models.converters.llamagen_gpt import to_llamagen_gpt
from gear.models.converters.llamagen_vq import to_llamagen_vq
from gear.models.init_from import source_state_dict
from gear.registry import MODELS
from gear.utils.checkpoint import CheckpointError, save_weights

STAGE1 = 'configs/gear/gear_vq_tiny_fashionmnist.py'
ARINIT = 'configs/ar/ar_vq_tiny_fashionmnist_arinit.py'


def build(config: str, checkpoint: str = None):
    """The shipped config's model, its init_from pointed at ``checkpoint`` (modules as shipped)."""
    cfg = Config.fromfile(config).model.to_dict()
    if checkpoint is not None:
        cfg['init_from'][0]['checkpoint'] = checkpoint
    with DefaultScope.overwrite_default_scope('gear'):
        return MODELS.build(cfg)


def perturbed(module: torch.nn.Module, by: float) -> dict:
    return {k: (v + by if v.is_floating_point() else v) for k, v in module.state_dict().items()}


@pytest.fixture(scope='module')
def stage1(tmp_path_factory):
    """A trained-looking stage-1 model (EMA copies differ from the live ones), saved as a gear
    weights file and as an official bundle of the same weights."""
    torch.manual_seed(0)
    model = build(STAGE1)
    model.tokenizer_ema.module.load_state_dict(perturbed(model.tokenizer, 0.5))
    model.prior_ema.module.load_state_dict(perturbed(model.prior, 0.25))
    model.tokenizer_ema.steps.fill_(7)
    with torch.no_grad():
        for m in model.discriminator.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_()  # buffers are read too
    root = tmp_path_factory.mktemp('stage1')
    gear_file = root / 'final.pth'
    save_weights(model.state_dict(), str(gear_file))
    (teacher, ) = list(model.teachers)
    projectors = model.prior.align_loss.projectors[teacher].mlp.state_dict()
    bundle = dict(
        vq=to_llamagen_vq(model.tokenizer.state_dict()),
        vq_ema=to_llamagen_vq(model.tokenizer_ema.module.state_dict()),
        ar={f'_orig_mod.{k}': v for k, v in to_llamagen_gpt(model.prior.ar.state_dict()).items()},
        ema=to_llamagen_gpt(model.prior_ema.module.ar.state_dict()),
        projectors={f'projs.0.{k}': v for k, v in projectors.items()},
        discriminator=model.discriminator.state_dict(),
        opt_ar={'state': {}, 'param_groups': [{'lr': 1e-4}]}, opt_vq={}, opt_disc={},
        sched_ar={}, sched_vq={}, sched_disc={},
        args={'temperature': 0.1, 'vae_align_proj_coeff': 0.5}, steps=400_000)
    official = root / 'stage1-official.pt'
    torch.save(bundle, official)
    return model, str(gear_file), str(official), bundle


def same_weights(module: torch.nn.Module, expected: dict):
    got = module.state_dict()
    assert got.keys() == expected.keys()
    for k in got:
        assert torch.equal(got[k], expected[k]), k


@pytest.mark.parametrize('source', ['gear', 'official'])
def test_stage1_starts_with_the_tokenizer_its_ema_and_the_discriminator(stage1, source):
    model, gear_file, official, _ = stage1
    torch.manual_seed(1)
    new = build(STAGE1, gear_file if source == 'gear' else official)
    new.init_weights()
    same_weights(new.tokenizer, model.tokenizer.state_dict())
    same_weights(new.tokenizer_ema.module, model.tokenizer_ema.module.state_dict())
    same_weights(new.discriminator, model.discriminator.state_dict())
    # the loaded EMA is kept: a zero counter would make mmengine's first update copy the live one
    assert new.tokenizer_ema.steps.item() == (7 if source == 'gear' else 400_000)


@pytest.mark.parametrize('source', ['gear', 'official'])
def test_ar_init_starts_from_the_stage1_ema_ar_in_both_copies(stage1, source):
    model, gear_file, official, _ = stage1
    torch.manual_seed(1)
    new = build(ARINIT, gear_file if source == 'gear' else official)
    new.init_weights()
    ema_ar = model.prior_ema.module.ar.state_dict()
    same_weights(new.prior.ar, ema_ar)             # the EMA AR, not the live one
    same_weights(new.prior_ema.module.ar, ema_ar)  # and its EMA starts equal
    live_projectors = model.prior.align_loss.projectors.state_dict()
    same_weights(new.prior.align_loss.projectors, live_projectors)
    same_weights(new.prior_ema.module.align_loss.projectors, live_projectors)
    same_weights(new.tokenizer, model.tokenizer_ema.module.state_dict())  # the EMA tokenizer


def test_a_bundle_without_a_key_gives_its_ema_tokenizer(stage1):
    model, _, official, _ = stage1
    ema = load_tokenizer(official)
    same_weights(ema, model.tokenizer_ema.module.state_dict())
    live = load_tokenizer(official, key='vq')
    same_weights(live, model.tokenizer.state_dict())


def test_the_bundle_reads_under_gear_names_and_skips_what_is_not_weights(stage1):
    model, gear_file, official, bundle = stage1
    assert is_official_bundle(bundle) and not is_official_bundle({'model': bundle['vq']})
    sd = source_state_dict(official, teacher_names=list(model.teachers))
    gear_sd = source_state_dict(gear_file)
    prefixes = {k.split('.')[0] for k in sd}
    assert prefixes == {'tokenizer', 'tokenizer_ema', 'prior', 'prior_ema', 'discriminator'}
    for k in sd:  # every weight the bundle has is the gear file's, under the same name
        assert torch.equal(sd[k], gear_sd[k]) or k.endswith('.steps'), k
    assert not any(k.startswith('prior.align_loss') for k in source_state_dict(official))


def test_bad_bundles_are_named(stage1, tmp_path):
    model, _, _, bundle = stage1
    odd = dict(bundle, surprise={'a': torch.zeros(1)})
    with pytest.raises(KeyError, match='surprise'):
        convert_official_bundle(odd)
    two = dict(bundle, projectors={**bundle['projectors'],
                                   **{k.replace('projs.0', 'projs.1'): v
                                      for k, v in bundle['projectors'].items()}})
    with pytest.raises(ValueError, match='2 projector'):
        convert_official_bundle(two, teacher_names=list(model.teachers))
    path = tmp_path / 'bad.pt'
    torch.save(dict(bundle, discriminator={'main.0.weight': torch.zeros(1), 'head.w': torch.zeros(1)}),
               path)
    with pytest.raises(CheckpointError, match=r'bad\.pt.*head\.w'):
        source_state_dict(str(path))
    torch.manual_seed(1)
    new = build(STAGE1, str(path))
    with pytest.raises(CheckpointError, match='bad.pt'):
        copy.deepcopy(new).init_weights()


def test_a_stage_starts_from_a_zoo_name(stage1, tmp_path, monkeypatch):
    """``init_from.checkpoint`` may be a model-zoo name: the file is downloaded (here from a
    local server, verified against the index's sha256) and read as any bundle; an unknown
    name fails naming the key, with a suggestion."""
    import hashlib

    from ..zoo_server import ZooServer, entry, write_index
    model, _, official, _ = stage1
    data = open(official, 'rb').read()
    with ZooServer() as server:
        server.files['/gear-vq.pt'] = data
        monkeypatch.setenv('GEAR_MODEL_INDEX', write_index(tmp_path / 'metafile.yml', [entry(
            'test-warmup-vq', 'vq', 'warmup', STAGE1, {'URL': server.url('/gear-vq.pt')},
            sha256=hashlib.sha256(data).hexdigest(), key='vq_ema')]))
        monkeypatch.setenv('GEAR_CACHE', str(tmp_path / 'cache'))
        torch.manual_seed(1)
        new = build(STAGE1, 'test-warmup-vq')
        new.init_weights()
        same_weights(new.discriminator, model.discriminator.state_dict())
        same_weights(new.tokenizer_ema.module, model.tokenizer_ema.module.state_dict())
        with pytest.raises(CheckpointError, match=r"init_from\[0\]\.checkpoint.*test-warmup-vqq.*"
                                                  r"test-warmup-vq"):
            build(STAGE1, 'test-warmup-vqq').init_weights()
