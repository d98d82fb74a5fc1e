"""Load and check a config before anything is built, so a typo fails in a second, naming its key.

Loading (:func:`read_config`): mmengine's ``Config.fromfile``, then :func:`drop_helpers` removes
the top-level names that start with ``_`` (a config file's own helper variables: values a fragment
shares with the files that inherit it, as ``{{_base_._tokenizer}}``, and numbers a file derives
settings from), so the resolved config holds settings only; then :func:`check_overrides` refuses
a ``--cfg-options`` key that nothing reads, with the nearest key that exists; then the overrides
are merged.

Checked by :func:`check_config`: every ``type`` resolves in some registry; every key of a typed dict is an argument of
that class (unless it takes ``**kwargs``) or one of its ``builder_args``; a hook's values pass its
``config_error`` (``default_hooks.checkpoint.time_interval``); model and dataset
components get every required argument; a dataset's own ``config_error`` passes (the folder
datasets' ``skip_corrupt``); the data resolution is a multiple of the tokenizer's downsampling
factor;
``sync_bn`` and ``env_cfg.dist_cfg.timeout`` have usable values; the batch is given as
``global_batch_size`` alone (the runner derives the per-rank ``train_dataloader.batch_size``);
``nonfinite`` is a watchdog policy (gear/engine/nonfinite.py) and its hook, ``log_sync``, is on.
"""
import difflib
import inspect
import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config, ConfigDict

import gear.registry as R

from .nonfinite import CONFIG_KEY as NONFINITE_KEY
from .nonfinite import parse_policy


class ConfigError(ValueError):
    """A config value is wrong; the message starts with the dotted key at fault."""


# Registries searched for a ``type`` name, most specific first.
_REGISTRIES = [R.TOKENIZERS, R.QUANTIZERS, R.AR_BACKBONES, R.READOUTS, R.ALIGN_ENCODERS,
               R.ALIGN_LOSSES, R.LOSSES, R.TEXT_ENCODERS, R.DISCRIMINATORS, R.MODELS, R.DATASETS, R.DATA_SAMPLERS,
               R.TRANSFORMS, R.FUNCTIONS, R.HOOKS, R.LOOPS, R.OPTIMIZERS, R.OPTIM_WRAPPERS,
               R.OPTIM_WRAPPER_CONSTRUCTORS, R.PARAM_SCHEDULERS, R.METRICS, R.EVALUATOR,
               R.VISUALIZERS, R.VISBACKENDS, R.LOG_PROCESSORS, R.RUNNERS, R.STRATEGIES,
               R.MODEL_WRAPPERS]
# Arguments the runner or a parent component injects, so a config never gives them (a class
# can name more in its ``injected_args``).
_INJECTED = {'self', 'runner', 'dataloader', 'evaluator', 'params', 'optimizer', 'dataset',
             'module', 'model', 'data_preprocessor', 'init_cfg'}
# Sub-trees whose required arguments are all the config's to give.
_REQUIRED_CHECKED = ('model', 'train_dataloader.dataset', 'val_dataloader.dataset',
                     'test_dataloader.dataset')


# Top-level settings something reads, whether or not a config sets them: mmengine's
# ``Runner.from_cfg`` and ``Runner`` (``model_wrapper_cfg``, ``compile``, ...), gear.train
# (``runner_type``) and gear (``GearRunner``: ``sync_bn``, ``deepspeed_cfg``,
# ``global_batch_size``; ``LogSyncHook``: ``nonfinite``).
SETTINGS = frozenset({
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
    'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler', 'val_evaluator',
    'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer', 'default_scope',
    'randomness', 'experiment_name', 'model_wrapper_cfg', 'find_unused_parameters', 'compile',
    'activation_checkpointing', 'efficient_conv_bn_eval', 'runner_type', 'sync_bn',
    'deepspeed_cfg', 'global_batch_size', NONFINITE_KEY})


def _lookup(name: str):
    import mmengine.runner  # noqa: F401  (registers mmengine's own hooks, loops, optimizers)
    for registry in _REGISTRIES:
        try:
            obj = registry.get(name)
        except Exception:  # a registry's location failing to import must not hide the others
            obj = None
        if obj is not None:
            return obj
    return None


def _known_names() -> List[str]:
    names = set()
    for registry in _REGISTRIES:
        names.update(registry.module_dict)
        if registry.parent is not None:
            names.update(registry.parent.module_dict)
    return sorted(names)


def _typed_dicts(node: Any, path: str) -> Iterator[Tuple[str, dict]]:
    if isinstance(node, dict):
        if 'type' in node:
            yield path, node
        for key, value in node.items():
            if key != 'type':
                yield from _typed_dicts(value, f'{path}.{key}' if path else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _typed_dicts(value, f'{path}[{i}]')


def _arguments(obj) -> Optional[Tuple[List[str], bool, dict]]:
    """(accepted keys, takes ``**kwargs``, parameters) of a class, or None if unknown."""
    if not inspect.isclass(obj):
        return None
    try:
        params = inspect.signature(obj.__init__).parameters
    except (TypeError, ValueError):
        return None
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    accepted = [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    accepted += list(getattr(obj, 'builder_args', ()))  # keys the parent's builder takes out
    return accepted, takes_kwargs, params


def _check_arguments(path: str, cfg: dict, obj) -> None:
    found = _arguments(obj)
    if found is None:
        return
    accepted, takes_kwargs, params = found
    if not takes_kwargs:
        for key in cfg:
            if key not in ('type', '_delete_') and key not in accepted:
                hint = difflib.get_close_matches(key, accepted, n=1)
                hint = f'; did you mean {hint[0]!r}?' if hint else ''
                raise ConfigError(f'{path}.{key}: {obj.__name__} has no argument {key!r}{hint} '
                                  f'(it takes: {", ".join(a for a in accepted if a != "self")})')
    if any(path == p or path.startswith(p + '.') for p in _REQUIRED_CHECKED):
        for name, p in params.items():
            if (p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                    and name not in _INJECTED and name not in cfg
                    and name not in getattr(obj, 'injected_args', ())):
                raise ConfigError(f'{path}.{name}: missing; {obj.__name__} requires it')


def _check_hook_values(path: str, cfg: dict, obj) -> None:
    """A hook's own check of its values (``config_error``, e.g. ``GearCheckpointHook``'s
    ``time_interval``), before anything is built."""
    from mmengine.hooks import Hook
    check = getattr(obj, 'config_error', None)
    if not (inspect.isclass(obj) and issubclass(obj, Hook) and callable(check)):
        return
    error = check(**{k: v for k, v in cfg.items() if k != 'type'})
    if error:
        raise ConfigError(f'{path}.{error}')


def _downsample_factor(tokenizer_cfg: Optional[dict]) -> Optional[int]:
    ch_mult = (tokenizer_cfg or {}).get('ch_mult')
    return 2 ** (len(ch_mult) - 1) if ch_mult else None  # one 2x down-sampling per extra level


def _check_tokenizer(tokenizer_cfg: Optional[dict]) -> None:
    """A codec / quantizer mismatch (e.g. an LFQ codebook that is not 2**z_channels), found by
    the tokenizer class's own ``config_error`` before anything is built."""
    if not isinstance(tokenizer_cfg, dict) or not isinstance(tokenizer_cfg.get('type'), str):
        return
    cls = _lookup(tokenizer_cfg['type'])
    check = getattr(cls, 'config_error', None)
    error = check(**{k: v for k, v in tokenizer_cfg.items() if k != 'type'}) if check else None
    if error:
        raise ConfigError(f'model.tokenizer.{error}')


def _check_datasets(cfg_dict: dict) -> None:
    """A dataset's arguments that its class's own ``config_error`` checks (e.g. the folder
    datasets' ``skip_corrupt``), before anything is built or read."""
    for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = (cfg_dict.get(split) or {}).get('dataset')
        if not isinstance(dataset, dict) or not isinstance(dataset.get('type'), str):
            continue
        check = getattr(_lookup(dataset['type']), 'config_error', None)
        error = check(**{k: v for k, v in dataset.items() if k != 'type'}) if check else None
        if error:
            raise ConfigError(f'{split}.dataset.{error}')


def _check_distributed(cfg_dict: dict) -> None:
    """``sync_bn`` names an implementation; ``env_cfg.dist_cfg.timeout`` is a positive number."""
    sync_bn = cfg_dict.get('sync_bn')
    if sync_bn is not None and sync_bn not in ('gear', 'torch', 'auto'):
        raise ConfigError(f"sync_bn: {sync_bn!r} is not an implementation; use 'gear' (any "
                          "device, gloo included), 'torch' (GPUs) or 'auto' (torch on CUDA)")
    timeout = ((cfg_dict.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout')
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout <= 0):
        raise ConfigError(f'env_cfg.dist_cfg.timeout: {timeout!r}; give the collective timeout '
                          'in seconds (a positive number)')


def _check_batch(cfg_dict: dict) -> None:
    """``global_batch_size`` is the one batch knob; the runner sets the per-rank batch."""
    loader = cfg_dict.get('train_dataloader')
    if isinstance(loader, dict) and 'batch_size' in loader:
        raise ConfigError('train_dataloader.batch_size: set global_batch_size instead (the batch '
                          'of one step over all ranks); each rank loads global_batch_size / '
                          'world size (gear/engine/batch.py)')
    if isinstance(loader, dict) and 'global_batch_size' not in cfg_dict:
        raise ConfigError('global_batch_size: missing; a config with a train_dataloader gives '
                          'the batch of one step over all ranks')
    batch = cfg_dict.get('global_batch_size')
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ConfigError(f'global_batch_size: {batch!r}; give the batch of one step over all '
                          'ranks (a positive integer)')


def _check_nonfinite(cfg_dict: dict) -> None:
    """``nonfinite`` parses as a watchdog policy, and the hook it runs in is there."""
    value = cfg_dict.get(NONFINITE_KEY)
    try:
        policy = parse_policy(value)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    hooks = cfg_dict.get('default_hooks') or {}
    if policy is not None and 'default_hooks' in cfg_dict and hooks.get('log_sync') is None:
        raise ConfigError(f'{NONFINITE_KEY}: the watchdog runs in default_hooks.log_sync '
                          '(LogSyncHook), which this config removes; keep the hook or set '
                          f'{NONFINITE_KEY}=None')


def check_config(cfg: Config) -> None:
    """Raise :class:`ConfigError` naming the first wrong key of ``cfg``; return None if fine."""
    cfg_dict = cfg.to_dict() if isinstance(cfg, (Config, ConfigDict)) else dict(cfg)
    if 'model' not in cfg_dict:
        raise ConfigError('model: missing; a config must define the model')
    # Top-level names starting with '_' are a config file's own helper variables, not settings.
    public = {k: v for k, v in cfg_dict.items() if not str(k).startswith('_')}
    for path, node in _typed_dicts(public, ''):
        type_ = node['type']
        obj = _lookup(type_) if isinstance(type_, str) else type_
        if obj is None:
            hint = difflib.get_close_matches(str(type_), _known_names(), n=1)
            hint = f'; did you mean {hint[0]!r}?' if hint else ''
            raise ConfigError(f'{path}.type: {type_!r} is not registered in any gear or '
                              f'mmengine registry{hint}')
        _check_arguments(path, node, obj)
        _check_hook_values(path, node, obj)
    _check_distributed(cfg_dict)
    _check_batch(cfg_dict)
    _check_datasets(cfg_dict)
    _check_nonfinite(cfg_dict)
    _check_tokenizer(cfg_dict['model'].get('tokenizer'))
    factor = _downsample_factor(cfg_dict['model'].get('tokenizer'))
    if factor:
        for split in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            dataset = (cfg_dict.get(split) or {}).get('dataset') or {}
            res = dataset.get('resolution')
            if res is not None and res % factor:
                raise ConfigError(
                    f'{split}.dataset.resolution: {res} is not a multiple of the tokenizer\'s '
                    f'downsampling factor {factor} (model.tokenizer.ch_mult has '
                    f'{len(cfg_dict["model"]["tokenizer"]["ch_mult"])} levels)')


def drop_helpers(cfg: Config) -> Config:
    """Remove a config's top-level helper variables (names starting with ``_``), in place.

    A config file's ``_``-prefixed top-level names are its own: values a fragment shares with the
    files that inherit it (``_tokenizer``, read as ``{{_base_._tokenizer}}``), the numbers a file
    derives its settings from (``_max_iters``), the checkpoint paths of earlier stages
    (``_stage0``). They are used while the files are read and nothing reads them afterwards, so
    the resolved config (the runner's, ``tools/print_config.py``'s, the dumped ``config.py``)
    holds settings only, and ``--cfg-options`` cannot set one (:func:`check_overrides`).
    mmengine itself drops only ``__``-prefixed names, and those per file, so a fragment cannot
    share them.
    """
    for key in [k for k in cfg.keys() if str(k).startswith('_')]:
        cfg.pop(key)
    return cfg


def _paths(node: Any, prefix: str = '') -> Iterator[str]:
    """Every dotted key of a config tree (list items as ``key.0``), for suggestions."""
    items = (node.items() if isinstance(node, dict)
             else enumerate(node) if isinstance(node, (list, tuple)) else ())
    for key, value in items:
        path = f'{prefix}.{key}' if prefix else str(key)
        yield path
        yield from _paths(value, path)


# Untyped dicts that something builds or reads with keyword arguments: the keys it accepts
# beside the ones a config already has.
def _untyped_arguments(path: str) -> List[str]:
    import torch.utils.data
    from mmengine.runner import LogProcessor, Runner

    if path in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        return list(inspect.signature(torch.utils.data.DataLoader).parameters)
    if path == 'log_processor':
        return list(inspect.signature(LogProcessor).parameters)
    if path == 'randomness':
        return [n for n in inspect.signature(Runner.set_randomness).parameters if n != 'self']
    if path == 'env_cfg':
        return ['cudnn_benchmark', 'mp_cfg', 'dist_cfg', 'resource_limit']
    if path == 'env_cfg.mp_cfg':
        return ['mp_start_method', 'opencv_num_threads']
    if path == NONFINITE_KEY:
        return ['policy', 'max_consecutive_skips']
    if re.fullmatch(r'model\.init_from\.\d+', path):  # an entry of the start-from list
        from gear.models.init_from import ENTRY_KEYS
        return list(ENTRY_KEYS)
    return []


def _unknown(key: str, parent: str, candidates: List[str], all_paths: List[str],
             why: str) -> ConfigError:
    """The error for an override ``key`` that nothing reads, with the nearest existing key."""
    full = [f'{parent}.{c}' if parent else c for c in candidates]
    hint = difflib.get_close_matches(key, full + all_paths, n=1, cutoff=0.75)
    if not hint:  # a setting given at the wrong depth: max_iters -> train_cfg.max_iters
        leaf = key.rsplit('.', 1)[-1]
        hint = [p for p in all_paths if p.rsplit('.', 1)[-1] == leaf][:1]
    hint = f'; did you mean {hint[0]!r}?' if hint else ''
    return ConfigError(f'{key}: {why}{hint} (--cfg-options sets keys that the config has or '
                       'that its component takes)')


def check_overrides(cfg: Config, options: Dict[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first ``--cfg-options`` key that nothing reads.

    ``cfg`` is the loaded config before the overrides (helpers dropped). A dotted key is
    accepted if its path exists in ``cfg``; or if, where the path leaves ``cfg``, the dict it
    would go in has a ``type`` whose class takes that argument (or takes ``**kwargs``), or is
    one that mmengine reads with known arguments (dataloaders, ``log_processor``,
    ``randomness``, ``env_cfg``); or if it starts a top-level setting that something reads
    (:data:`SETTINGS`, e.g. ``deepspeed_cfg.zero_stage``). The error names the key and the
    nearest existing one: ``train_cfg.max_iter`` -> ``train_cfg.max_iters``,
    ``model.tokenizr`` -> ``model.tokenizer``, ``max_iters`` -> ``train_cfg.max_iters``.
    """
    tree = cfg.to_dict() if isinstance(cfg, (Config, ConfigDict)) else dict(cfg)
    all_paths = list(_paths(tree))
    for key in options:
        parts = str(key).split('.')
        head = parts[0]
        if head not in tree:
            if head in SETTINGS and not head.startswith('_'):
                continue  # a setting this config leaves at its default; its keys are the reader's
            why = ('a helper variable of the config files, not a setting'
                   if head.startswith('_') else 'not a setting that anything reads')
            raise _unknown(key, '', sorted(SETTINGS), all_paths, why)
        node, parent = tree[head], head
        for part in parts[1:]:
            if isinstance(node, dict) and part in node:
                node, parent = node[part], f'{parent}.{part}'
                continue
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node, parent = node[int(part)], f'{parent}.{part}'
                continue
            if not isinstance(node, dict):  # under a value that is not a dict (None, a number)
                if node is None:
                    break  # e.g. model.init_from=None then model.init_from.checkpoint=x
                raise ConfigError(f'{key}: {parent} is {node!r}, not a dict')
            obj = _lookup(node['type']) if isinstance(node.get('type'), str) else node.get('type')
            found = _arguments(obj) if obj is not None else None
            if found is not None:
                accepted, takes_kwargs, _ = found
                if takes_kwargs or part in accepted:
                    break  # an argument of the component: check_config checks the rest
                raise _unknown(key, parent, accepted + list(node), all_paths,
                               f'{obj.__name__} has no argument {part!r}')
            accepted = _untyped_arguments(parent)
            if part in accepted:
                break
            raise _unknown(key, parent, accepted + list(node), all_paths,
                           f'{parent} has no key {part!r}')


def read_config(path: str, options: Optional[Dict[str, Any]] = None) -> Config:
    """gear's config loader: ``Config.fromfile``, :func:`drop_helpers`, :func:`check_overrides`
    and then the overrides merged (``--cfg-options``).

    Raises:
        ConfigError: If an override names a key that nothing reads.
    """
    cfg = drop_helpers(Config.fromfile(path))
    if options:
        check_overrides(cfg, options)
        cfg.merge_from_dict(options)
    return cfg
