"""Model-zoo names -> gear models: download (``gear.utils.model_index``), convert, cache the
converted gear weights file, build.

A released file is converted once: the gear weights file (``{'schema_version', 'arch',
'state_dict', 'source'}``) is written atomically to ``{cache}/converted/{name}-{sha256[:8]}.pth``
(``{name}.{key}-...`` for a key other than the entry's default). A later load finds it by name,
checks that its bytes still hash to its name and that ``source`` (the entry, its file, digest
and key) is the one asked for, and reads it without touching the released file or the network;
a cached file that fails any check is deleted and rebuilt.
"""
import glob
import logging
import os
import os.path as osp
from typing import Any, Callable, Dict, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from gear.models.converters.llamagen_gpt import (convert_llamagen_gpt, gpt_arch_from_llamagen,
                                                 infer_arch as infer_gpt_arch)
from gear.models.init_from import read_checkpoint
from gear.registry import MODELS
from gear.utils.checkpoint import (CheckpointError, file_sha256, load_state_dict_strict,
                                   load_weights, save_hashed_weights)
from gear.utils.config_path import find_config
from gear.utils.model_index import (ZooEntry, cache_dir, find_entry, resolve_checkpoint,
                                    unknown_name_error)

logger = logging.getLogger(__name__)
TOKENIZER_FAMILIES = dict(VQTokenizer='vq', LFQTokenizer='lfq', IBQTokenizer='ibq')
TOKENIZER_FAMILY_NAMES = ('vq', 'lfq', 'ibq')


def zoo_entry(name: str, want: str) -> ZooEntry:
    """The entry ``name``, checked to be a tokenizer (``want='tokenizer'``) or a generator
    (``want='generator'``; ``'any'``: not checked); the error names the entry, its family and
    stage."""
    entry = find_entry(name)
    if entry is None:
        raise unknown_name_error(name)
    is_tokenizer = entry.family in TOKENIZER_FAMILY_NAMES
    if want == 'tokenizer' and not is_tokenizer:
        raise CheckpointError(f'model-zoo entry {name!r} ({entry.filename}) is a {entry.family} '
                              f'generator (stage {entry.stage}), not a tokenizer: use '
                              'load_generator, or load_tokenizer on its tokenizer '
                              f'{entry.tokenizer!r}')
    if want == 'generator' and is_tokenizer:
        raise CheckpointError(f'model-zoo entry {name!r} ({entry.filename}) is a {entry.family} '
                              f'tokenizer (stage {entry.stage}) with no AR generator: use '
                              'load_tokenizer')
    return entry


def _source(entry: ZooEntry, key: Optional[str]) -> Dict[str, Any]:
    return dict(name=entry.name, where=entry.where, sha256=entry.sha256, key=key)


def _stem(entry: ZooEntry, key: Optional[str]) -> str:
    suffix = '' if key == entry.key else f'.{key}'
    return osp.join(cache_dir(), 'converted', f'{entry.name}{suffix}')


def _valid_cached(path: str, source: Dict[str, Any]) -> bool:
    """Whether a converted cache file is intact (its sha256 starts with the 8 digits of its
    name) and was made from ``source``; one that is not is deleted."""
    digits = osp.splitext(path)[0].rsplit('-', 1)[-1]
    reason = None
    if file_sha256(path)[:8] != digits:
        reason = 'its bytes do not hash to its name (corrupt)'
    else:
        try:
            made_from = load_weights(path).get('source')
        except CheckpointError as e:
            made_from, reason = None, str(e)
        if reason is None and made_from != source:
            reason = f'it was made from {made_from}, not {source}'
    if reason is not None:
        logger.warning('converted cache file %s is not used and is deleted: %s', path, reason)
        os.remove(path)
    return reason is None


def converted_file(entry: ZooEntry, key: Optional[str],
                   convert: Callable[[str, Optional[str]], Tuple[dict, dict]]) -> str:
    """The cached converted gear weights file of ``entry`` read at ``key``, made if needed.

    Args:
        entry: a zoo entry.
        key: the bundle key to read (None: the converter's choice).
        convert: ``(released file, key) -> (arch, gear state dict)``.
    """
    source, stem = _source(entry, key), _stem(entry, key)
    for path in sorted(glob.glob(glob.escape(stem) + '-' + '[0-9a-f]' * 8 + '.pth')):
        if _valid_cached(path, source):
            return path
    released = resolve_checkpoint(entry.name)
    arch, state_dict = convert(released, key)
    path = save_hashed_weights(state_dict, stem + '.pth', arch, extra=dict(source=source))
    logger.info('%s (key %r): converted %s -> %s', entry.name, key, released, path)
    return path


def convert_tokenizer_file(entry: ZooEntry, released: str, key: Optional[str]) -> Tuple[dict, dict]:
    """A released tokenizer file -> (TOKENIZERS config, gear state dict), family checked."""
    from .loading import tokenizer_state  # loading.py imports this module
    arch, state_dict = tokenizer_state(released, key)
    family = TOKENIZER_FAMILIES.get(arch.get('type'))
    if family != entry.family:
        raise CheckpointError(f'model-zoo entry {entry.name!r}: {released} holds a {family} '
                              f'tokenizer ({arch.get("type")}); the index says {entry.family}')
    return arch, state_dict


def convert_gpt_file(entry: ZooEntry, released: str, key: Optional[str]) -> Tuple[dict, dict]:
    """A released LlamaGen-style GPT file -> (LlamaGenGPT config, gear state dict).

    The architecture: the entry's ``Metadata.Architecture``, else the file's ``arch`` (LlamaGen
    ``ModelArgs`` kwargs), else read off the shapes."""
    ckpt = read_checkpoint(released)
    try:
        state_dict = convert_llamagen_gpt(ckpt, key=key)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f'model-zoo entry {entry.name!r}: {released} is not a LlamaGen / '
                              f'GEAR GPT checkpoint: {e}') from e
    if entry.metadata.get('Architecture'):
        arch = dict(entry.metadata['Architecture'])
    elif isinstance(ckpt.get('arch'), dict):
        arch = gpt_arch_from_llamagen(ckpt['arch'])
    else:
        arch = infer_gpt_arch(state_dict)
    return dict(type='LlamaGenGPT', **arch), state_dict


def tokenizer_file(name: str, key: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """(converted tokenizer weights file, key used) of the tokenizer entry ``name``."""
    entry = zoo_entry(name, 'tokenizer')
    key = entry.key if key is None else key
    return converted_file(entry, key, lambda p, k: convert_tokenizer_file(entry, p, k)), key


def gpt_file(name: str, key: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """(converted GPT weights file, key used) of the GPT entry ``name``."""
    entry = zoo_entry(name, 'generator')
    key = entry.key if key is None else key
    return converted_file(entry, key, lambda p, k: convert_gpt_file(entry, p, k)), key


def converted_file_of(name: str, key: Optional[str] = None) -> str:
    """The converted gear weights file of any zoo entry (``tools/download.py --convert``)."""
    entry = zoo_entry(name, 'any')
    return (tokenizer_file if entry.family in TOKENIZER_FAMILY_NAMES else gpt_file)(name, key)[0]


def _with_info(module: nn.Module, **info) -> nn.Module:
    module.zoo_info = info  # what was loaded: entry, file, key (also logged)
    logger.info('loaded %s', info)
    return module


def load_zoo_tokenizer(name: str, key: Optional[str] = None, device: str = 'cpu') -> nn.Module:
    """The tokenizer of the zoo entry ``name``; ``key`` overrides the entry's ``Metadata.Key``.

    The returned module's ``zoo_info`` records the entry, the converted file and the key.
    """
    from .loading import load_tokenizer
    for attempt in range(2):
        path, key = tokenizer_file(name, key)
        try:
            tokenizer = load_tokenizer(path, device=device)
            break
        except CheckpointError:
            if attempt:
                raise
            logger.warning('converted file %s does not load; rebuilding it', path)
            os.remove(path)
    return _with_info(tokenizer, name=name, file=path, key=key)


def _generator_config(entry: ZooEntry, tokenizer_arch: dict, gpt_arch: dict) -> dict:
    """The entry's ``Config`` model (a FrozenTokenizerAR), with the released tokenizer and GPT
    architectures, no ``init_from``, and hub teachers built without downloading weights."""
    cfg = Config.fromfile(find_config(entry.config)).model.to_dict()
    if cfg.get('type') != 'FrozenTokenizerAR':
        raise CheckpointError(f'model-zoo entry {entry.name!r}: its Config {entry.config} builds '
                              f'{cfg.get("type")}, not a FrozenTokenizerAR')
    cfg.update(tokenizer=tokenizer_arch, init_from=None)
    cfg['prior'] = dict(cfg['prior'], ar=gpt_arch)
    n_layer = gpt_arch.get('n_layer') or _gpt_sizes()[gpt_arch['size']]['n_layer']
    cfg['prior']['align_depth'] = min(cfg['prior'].get('align_depth', 1), n_layer)
    for teacher in cfg['teachers'].values():  # the projector is untrained: no teacher weights
        if teacher.get('type') == 'TimmTeacher' and teacher.get('weights') is None:
            teacher['pretrained_source'] = 'none'
    return cfg


def _gpt_sizes() -> dict:
    from gear.models.ar.llamagen_gpt import GPT_SIZES
    return GPT_SIZES


def load_zoo_generator(name: str, key: Optional[str] = None, device: str = 'cpu') -> nn.Module:
    """A ``FrozenTokenizerAR`` that samples with the zoo GPT ``name`` and its tokenizer entry.

    A gear weights file of a stage model (``tools/publish_model.py``) loads as it is. A released
    LlamaGen-style GPT is loaded strictly into the prior's AR and its EMA copy; the tokenizer is
    the entry's ``Metadata.Tokenizer`` (its default key). The REPA projector is not in a c2i GPT
    release: it stays at its initialisation, untrained, and sampling never uses it (nor the
    teacher, built without weights).
    """
    from .loading import load_model
    entry = zoo_entry(name, 'generator')
    if not glob.glob(glob.escape(_stem(entry, entry.key if key is None else key)) + '-*.pth'):  # not converted yet: look first
        released = resolve_checkpoint(name)
        if 'schema_version' in read_checkpoint(released):  # a published gear stage model
            return _with_info(load_model(released, device=device), name=name, file=released,
                              key=None)
    gpt_path, key = gpt_file(name, key)
    gpt = load_weights(gpt_path)
    if not entry.tokenizer:
        raise CheckpointError(f'model-zoo entry {name!r} is a bare GPT and names no '
                              'Metadata.Tokenizer to sample with')
    tok_path, _ = tokenizer_file(entry.tokenizer)
    tok = load_weights(tok_path)
    with DefaultScope.overwrite_default_scope('gear'):
        model = MODELS.build(_generator_config(entry, tok['arch'], gpt['arch']))
    load_state_dict_strict(model.tokenizer, tok['state_dict'], source=tok_path)
    load_state_dict_strict(model.prior.ar, gpt['state_dict'], source=gpt_path)
    load_state_dict_strict(model.prior_ema.module.ar, gpt['state_dict'], source=gpt_path)
    return _with_info(model.to(device).eval(), name=name, file=gpt_path, key=key,
                      tokenizer=entry.tokenizer, tokenizer_file=tok_path)
