"""Config mistakes fail before anything is built, naming the key at fault; real configs pass."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

from gear.engine.config_check import (SETTINGS, ConfigError, check_config, check_overrides,
                                      read_config)

from ..conftest import REPO

TINY = osp.join(REPO, 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py')


EXPERIMENTS = sorted(p for p in glob.glob(osp.join(REPO, 'configs/*/*.py'))
                     if '/_base_/' not in p and '/pipelines/' not in p and '/studies/' not in p)


@pytest.mark.parametrize('path', EXPERIMENTS, ids=[osp.relpath(p, REPO) for p in EXPERIMENTS])
def test_every_shipped_config_passes(path):
    check_config(read_config(path))


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
    check_config(_tiny(**{'sync_bn': 'auto'}))  # the ImageNet recipes' (torch's on CUDA)


IMAGENET = osp.join(REPO, 'configs/tokenizer/tokenizer_vq16_imagenet.py')  # ImageNetFolder


@pytest.mark.parametrize('value, key', [
    ({'max_file': 3}, 'skip_corrupt.max_file'), (True, 'skip_corrupt'),
    ({}, 'skip_corrupt.max_files'), ({'max_files': -1}, 'skip_corrupt.max_files'),
    ({'max_files': '100'}, 'skip_corrupt.max_files')])
def test_a_bad_skip_corrupt_names_the_key(value, key):
    cfg = read_config(IMAGENET, {'val_dataloader.dataset.skip_corrupt': value})
    with pytest.raises(ConfigError, match=rf'^val_dataloader\.dataset\.{key}: .*'
                                          r'give skip_corrupt=dict\(max_files=N\)'):
        check_config(cfg)


def test_skip_corrupt_from_the_command_line_passes():
    check_config(read_config(IMAGENET, {'train_dataloader.dataset.skip_corrupt.max_files': 100}))
    check_config(read_config(IMAGENET, {'train_dataloader.dataset.skip_corrupt': None}))


@pytest.mark.parametrize('options, key', [
    ({'nonfinite.policy': 'ignore'}, 'nonfinite.policy'),
    ({'nonfinite.policy': 'skip'}, 'nonfinite.max_consecutive_skips'),  # skip needs the limit
    ({'nonfinite': dict(policy='skip', max_consecutive_skips=0)},
     'nonfinite.max_consecutive_skips'),
    ({'nonfinite.max_consecutive_skips': 3}, 'nonfinite.max_consecutive_skips'),  # with 'stop'
    ({'nonfinite.polcy': 'skip'}, 'nonfinite.polcy'),
    ({'nonfinite': 'stop'}, 'nonfinite'),
    ({'default_hooks.log_sync': None}, 'nonfinite'),  # the watchdog's hook removed
])
def test_a_bad_nonfinite_setting_names_the_key(options, key):
    with pytest.raises(ConfigError, match=rf'^{re.escape(key)}: '):
        check_config(_tiny(**options))


def test_nonfinite_settings_that_pass():
    assert read_config(TINY).nonfinite == dict(policy='stop')  # the default_runtime.py default
    check_config(read_config(TINY, {'nonfinite.policy': 'skip',
                                    'nonfinite.max_consecutive_skips': 3}))
    check_config(read_config(TINY, {'nonfinite': None, 'default_hooks.log_sync': None}))


@pytest.mark.parametrize('value', [0, -5, '30 min', True])
def test_a_bad_checkpoint_time_interval_names_the_key(value):
    with pytest.raises(ConfigError, match=rf'^default_hooks\.checkpoint\.time_interval: '
                                          rf'{value!r}; give the minutes between checkpoints'):
        check_config(read_config(TINY, {'default_hooks.checkpoint.time_interval': value}))
    with pytest.raises(ConfigError, match=r"^default_hooks\.checkpoint\.agree_interval: 0; "):
        check_config(read_config(TINY, {'default_hooks.checkpoint.agree_interval': 0}))
    check_config(read_config(TINY, {'default_hooks.checkpoint.time_interval': 0.5,
                                    'default_hooks.checkpoint.agree_interval': 10}))
    with pytest.raises(ConfigError, match=r"^default_hooks\.checkpoint\.time_intervall: "
                                          r".*did you mean 'default_hooks\.checkpoint\."
                                          r"time_interval'"):
        read_config(TINY, {'default_hooks.checkpoint.time_intervall': 30})


# --- the resolved config holds settings only; --cfg-options name keys that something reads

@pytest.mark.parametrize('path', EXPERIMENTS, ids=[osp.relpath(p, REPO) for p in EXPERIMENTS])
def test_resolved_configs_hold_only_settings(path):
    extra = sorted(set(read_config(path).keys()) - SETTINGS)
    assert not extra, f'top-level keys nothing reads (prefix helpers with _): {extra}'


def _depth(path: str, fragments: bool) -> int:
    """Files on the longest ``_base_`` chain from ``path`` (itself included) that are
    ``_base_`` fragments (``fragments``) or experiments (not)."""
    with open(path) as f:
        text = f.read()
    own = int(('/_base_/' in path) == fragments)
    if '_base_ = ' not in text:
        return own
    bases = Config._get_base_files(path)
    return own + max(_depth(osp.normpath(osp.join(osp.dirname(path), b)), fragments)
                     for b in bases)


@pytest.mark.parametrize('path', EXPERIMENTS, ids=[osp.relpath(p, REPO) for p in EXPERIMENTS])
def test_an_experiment_is_fragments_and_at_most_one_link(path):
    # the experiment and at most one "this stage from that stage" link ...
    assert _depth(path, fragments=False) <= 2
    # ... then _base_ fragments: a stage recipe (configs/_base_/recipes/) and the parts it joins
    assert _depth(path, fragments=True) <= 2


def _bases(path: str) -> set:
    """Every file ``path`` reaches through ``_base_``, itself excluded."""
    with open(path) as f:
        if '_base_ = ' not in f.read():
            return set()
    found = set()
    for b in Config._get_base_files(path):
        b = osp.normpath(osp.join(osp.dirname(path), b))
        found |= {b} | _bases(b)
    return found


# fragments a user swaps in for another (a strategy, a teacher, a text encoder) may be unread
SWAP_INS = ('strategies', 'teachers', 'text_encoders')


def test_every_fragment_is_read_by_an_experiment():
    fragments = {p for p in glob.glob(osp.join(REPO, 'configs/_base_/**/*.py'), recursive=True)
                 if osp.basename(osp.dirname(p)) not in SWAP_INS}
    read = set().union(*(_bases(p) for p in EXPERIMENTS))
    dead = sorted(osp.relpath(p, REPO) for p in fragments - read)
    assert not dead, f'fragments no experiment config reads: {dead}'


@pytest.mark.parametrize('key, suggestion', [
    ('train_cfg.max_iter', 'train_cfg.max_iters'),     # an argument of the typed loop
    ('model.tokenizr', 'model.tokenizer'),             # an argument of the model
    ('model.tokenizr.ch', 'model.tokenizer.ch'),
    ('max_iters', 'train_cfg.max_iters'),              # a dead top-level copy, at the wrong depth
    ('log_processor.windw_size', 'log_processor.window_size'),  # untyped, read by mmengine
    ('default_hooks.loger.interval', 'default_hooks.logger.interval'),
    ('_lr', None),                                     # a helper variable: dropped after loading
    ('num_gpus', None),
])
def test_an_override_nothing_reads_is_an_error_with_a_suggestion(key, suggestion):
    with pytest.raises(ConfigError) as e:
        read_config(TINY, {key: 1})
    assert str(e.value).startswith(f'{key}: ')
    if suggestion:
        assert f"did you mean {suggestion!r}" in str(e.value)


@pytest.mark.parametrize('key', [
    'train_cfg.max_iters', 'model.tokenizer.quantizer.codebook_size', 'global_batch_size',
    'default_hooks.export_weights', 'model.init_from', 'randomness.seed',
    'randomness.diff_rank_seed',          # an argument of Runner.set_randomness
    'train_dataloader.drop_last',         # an argument of torch's DataLoader
    'model.ema_decay', 'model.gan_loss.disc_start',
    'deepspeed_cfg.zero_stage',           # a setting the config leaves unset
    'sync_bn', 'model.tokenizer.quantizer.entropy_temperature',  # an argument left at its default
    'custom_hooks.0.num_images',          # a list item
])
def test_overrides_of_keys_something_reads_pass(key):
    check_overrides(read_config(TINY), {key: 1})


def test_every_override_of_the_shipped_pipelines_names_a_read_key():
    from gear.pipeline.chain import load_pipeline
    for path in sorted(glob.glob(osp.join(REPO, 'configs/pipelines/*.py'))):
        pipeline = load_pipeline(path)
        for stage in pipeline.stages:
            check_config(read_config(osp.join(REPO, stage.config), pipeline.options(stage)))


def test_the_batch_is_global_batch_size_alone():
    with pytest.raises(ConfigError, match=r'^train_dataloader\.batch_size: set global_batch_size'):
        check_config(read_config(TINY, {'train_dataloader.batch_size': 8}))
    cfg = read_config(TINY)
    cfg.pop('global_batch_size')
    with pytest.raises(ConfigError, match=r'^global_batch_size: missing'):
        check_config(cfg)
    with pytest.raises(ConfigError, match=r'^global_batch_size: 0'):
        check_config(read_config(TINY, {'global_batch_size': 0}))


# --- the hooks the pipeline and resume depend on are default hooks, keyed by name

PIPELINE_HOOKS = {'log_sync': 'LogSyncHook', 'rng_state': 'RNGStateHook',
                  'codebook_monitor': 'CodebookMonitorHook', 'export_weights': 'ExportWeightsHook',
                  'checkpoint': 'GearCheckpointHook', 'signals': 'SignalHook',
                  'progress': 'ProgressHook'}


def _registered(cfg) -> list:
    """The hooks a GearRunner registers for ``cfg``, in the order they run."""
    from mmengine.registry import DefaultScope

    from gear.engine.runner import GearRunner
    runner = GearRunner.__new__(GearRunner)  # only the hook registration of a runner
    runner._hooks = []
    with DefaultScope.overwrite_default_scope('gear'):
        runner.register_hooks(cfg.default_hooks, cfg.custom_hooks)
    return [type(h).__name__ for h in runner._hooks]


@pytest.mark.parametrize('path', EXPERIMENTS, ids=[osp.relpath(p, REPO) for p in EXPERIMENTS])
def test_pipeline_hooks_come_from_default_hooks_once(path):
    cfg = read_config(path)
    for name, type_ in PIPELINE_HOOKS.items():
        assert cfg.default_hooks[name]['type'] == type_
    listed = [h['type'] for h in cfg.custom_hooks]
    assert not set(listed) & set(PIPELINE_HOOKS.values()), listed
    hooks = _registered(cfg)
    for type_ in PIPELINE_HOOKS.values():
        assert hooks.count(type_) == 1, hooks


def test_hook_order_is_unchanged():
    # commit 3c4e6f9 listed RNGState, CodebookMonitor, ValidateAtStart, ReconstructionVis and
    # ExportWeights in custom_hooks; mmengine sorts by priority, ties in registration order.
    # ExportWeights (after_train) now registers before ValidateAtStart (before_train), both
    # LOWEST: no event runs both, so every event runs its hooks in the old order.
    # GearCheckpointHook took CheckpointHook's place; SignalHook (LOWEST) installs its handlers
    # before the validation at step 0 and restores them after the export (after_run).
    # CodesCheckHook (VERY_HIGH, before_train only) refuses stale pre-extracted codes before any
    # other hook, or the validation at step 0, reads them. ProgressHook (LOWEST) starts its clock
    # before the validation at step 0 and writes its last progress.json after the export.
    assert _registered(read_config(TINY)) == [
        'LogSyncHook', 'RuntimeInfoHook', 'CodesCheckHook', 'IterTimerHook', 'DistSamplerSeedHook',
        'CodebookMonitorHook', 'LoggerHook', 'ParamSchedulerHook', 'ReconstructionVisHook',
        'GearCheckpointHook', 'RNGStateHook', 'ExportWeightsHook', 'SignalHook', 'ProgressHook',
        'ValidateAtStartHook']


def test_a_default_hook_is_removed_with_none():
    cfg = read_config(TINY, {'default_hooks.export_weights': None, 'default_hooks.timer': None})
    hooks = _registered(cfg)
    assert 'ExportWeightsHook' not in hooks and 'IterTimerHook' not in hooks
    assert 'RNGStateHook' in hooks


@pytest.mark.parametrize('config, options, message', [
    ('tokenizer_lfq_tiny_fashionmnist', {'model.tokenizer.z_channels': 6},
     r'^model\.tokenizer\.quantizer\.codebook_size: 256 is not 2\*\*z_channels = 2\*\*6 = 64'),
    ('tokenizer_lfq_tiny_fashionmnist',
     {'model.tokenizer.quantizer': dict(_delete_=True, type='VectorQuantizer', codebook_size=64,
                                        embed_dim=4)},
     r'^model\.tokenizer\.quantizer\.embed_dim: 4 != z_channels = 8'),
    ('tokenizer_ibq_tiny_fashionmnist', {'model.tokenizer.attn_resolutions': (4, )},
     r'^model\.tokenizer\.attn_resolutions: \[4\] is not a level .* \[32, 16, 8\] px'),
])
def test_a_codec_quantizer_mismatch_names_the_key(config, options, message):
    cfg = Config.fromfile(osp.join(REPO, f'configs/tokenizer/{config}.py'))
    check_config(cfg)  # as shipped
    cfg.merge_from_dict(options)
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)
    from gear.registry import TOKENIZERS  # the constructor says the same
    with pytest.raises(ValueError, match=message[1:]):
        TOKENIZERS.build(cfg.model.tokenizer)
