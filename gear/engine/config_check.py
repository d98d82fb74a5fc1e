"""Check a config before anything is built, so a typo fails in a second, naming its key.

Checked: every ``type`` resolves in some registry; every key of a typed dict is an argument of
that class (unless it takes ``**kwargs``) or one of its ``builder_args``; model and dataset
components get every required argument; the data resolution is a multiple of the tokenizer's downsampling factor;
``sync_bn`` and ``env_cfg.dist_cfg.timeout`` have usable values.
"""
import difflib
import inspect
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.config import Config, ConfigDict

import gear.registry as R


class ConfigError(ValueError):
    """A config value is wrong; the message starts with the dotted key at fault."""


# Registries searched for a ``type`` name, most specific first.
_REGISTRIES = [R.TOKENIZERS, R.QUANTIZERS, R.AR_BACKBONES, R.READOUTS, R.ALIGN_ENCODERS,
               R.ALIGN_LOSSES, R.LOSSES, R.DISCRIMINATORS, R.MODELS, R.DATASETS, R.DATA_SAMPLERS,
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


def _check_arguments(path: str, cfg: dict, obj) -> None:
    if not inspect.isclass(obj):
        return
    try:
        params = inspect.signature(obj.__init__).parameters
    except (TypeError, ValueError):
        return
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    accepted = [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    accepted += list(getattr(obj, 'builder_args', ()))  # keys the parent's builder takes out
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


def _downsample_factor(tokenizer_cfg: Optional[dict]) -> Optional[int]:
    ch_mult = (tokenizer_cfg or {}).get('ch_mult')
    return 2 ** (len(ch_mult) - 1) if ch_mult else None  # one 2x down-sampling per extra level


def _check_distributed(cfg_dict: dict) -> None:
    """``sync_bn`` names an implementation; ``env_cfg.dist_cfg.timeout`` is a positive number."""
    sync_bn = cfg_dict.get('sync_bn')
    if sync_bn is not None and sync_bn not in ('gear', 'torch'):
        raise ConfigError(f"sync_bn: {sync_bn!r} is not an implementation; use 'gear' (any "
                          "device, gloo included) or 'torch' (GPUs)")
    timeout = ((cfg_dict.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout')
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout <= 0):
        raise ConfigError(f'env_cfg.dist_cfg.timeout: {timeout!r}; give the collective timeout '
                          'in seconds (a positive number)')


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
    _check_distributed(cfg_dict)
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
