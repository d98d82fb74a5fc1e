"""Config mistakes fail before anything is built, naming the key at fault; real configs pass."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from gear.engine.config_check import ConfigError, check_config

from ..conftest import REPO

TINY = osp.join(REPO, 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py')


EXPERIMENTS = sorted(p for p in glob.glob(osp.join(REPO, 'configs/*/*.py'))
                     if '/_base_/' not in p and '/pipelines/' not in p and '/studies/' not in p)


@pytest.mark.parametrize('path', EXPERIMENTS, ids=[osp.relpath(p, REPO) for p in EXPERIMENTS])
def test_every_shipped_config_passes(path):
    check_config(Config.fromfile(path))


def _tiny(**options) -> Config:
    cfg = Config.fromfile(TINY)
    cfg.merge_from_dict(options)
    return cfg


def test_unknown_type_names_the_key_and_suggests():
    with pytest.raises(ConfigError) as e:
        check_config(_tiny(**{'model.tokenizer.quantizer.type': 'VectorQuantiser'}))
    assert str(e.value).startswith('model.tokenizer.quantizer.type:')
    assert "'VectorQuantizer'" in str(e.value)


def test_unexpected_key_names_the_key():
    with pytest.raises(ConfigError, match=r"^model\.tokenizer\.quantizer\.codebook_sise: .*"
                                          r"did you mean 'codebook_size'"):
        check_config(_tiny(**{'model.tokenizer.quantizer.codebook_sise': 10}))


def test_missing_required_key_names_the_key():
    cfg = _tiny()
    del cfg.model.tokenizer.quantizer['codebook_size']
    with pytest.raises(ConfigError, match=r'^model\.tokenizer\.quantizer\.codebook_size: missing'):
        check_config(cfg)


def test_missing_model_component():
    cfg = _tiny()
    del cfg.model['discriminator']
    with pytest.raises(ConfigError, match=r'^model\.discriminator: missing'):
        check_config(cfg)


def test_resolution_not_a_multiple_of_the_downsampling_factor():
    with pytest.raises(ConfigError, match=r'^train_dataloader\.dataset\.resolution: 30 .* factor 4'):
        check_config(_tiny(**{'train_dataloader.dataset.resolution': 30}))


def test_unknown_hook_type_in_a_list():
    cfg = _tiny()
    cfg.custom_hooks.append(dict(type='NoSuchHook'))
    with pytest.raises(ConfigError, match=r'^custom_hooks\[\d+\]\.type:'):
        check_config(cfg)


def test_a_teachers_cache_dir_passes_and_its_typo_names_the_key():
    cfg = Config.fromfile(osp.join(REPO, 'configs/ar/ar_vq_tiny_fashionmnist_vqonly.py'))
    cfg.merge_from_dict({'model.teachers.effnet.cache_dir': 'work_dirs/teacher_cache'})
    check_config(cfg)
    cfg.merge_from_dict({'model.teachers.effnet.cache_dri': 'work_dirs/teacher_cache'})
    with pytest.raises(ConfigError, match=r"^model\.teachers\.effnet\.cache_dri: .*did you mean "
                                          r"'cache_dir'"):
        check_config(cfg)


@pytest.mark.parametrize('options, key', [
    ({'sync_bn': 'mmcv'}, 'sync_bn'),
    ({'env_cfg.dist_cfg.timeout': 0}, 'env_cfg.dist_cfg.timeout'),
    ({'env_cfg.dist_cfg.timeout': '30 min'}, 'env_cfg.dist_cfg.timeout')])
def test_bad_distributed_settings_name_the_key(options, key):
    with pytest.raises(ConfigError, match=rf'^{key}: '):
        check_config(_tiny(**options))
    check_config(_tiny(**{'sync_bn': 'gear', 'env_cfg.dist_cfg.timeout': 60}))
