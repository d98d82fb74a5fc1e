"""Start a stage from an earlier one: the model's ``init_from`` list, applied in ``init_weights``.

    init_from=[dict(checkpoint=PATH_OR_ZOO_NAME, modules={src_prefix: dst_attribute}, key=None), ...]

``checkpoint`` is a file or a model-zoo name (``model-index.yml``, e.g. ``'warmup-vq16'``:
downloaded, checksum-verified and cached by ``gear.utils.model_index.resolve_checkpoint``).
Each entry copies the weights under ``src_prefix`` of a checkpoint into the sub-module
``dst_attribute`` of the model, strictly. On the command line ``modules`` may be written
``src:dst[,src:dst]``, e.g. ``--cfg-options model.init_from.0.modules=tokenizer:tokenizer``. Sources are read with ``weights_only=True`` and seen
under gear's model key names:
- a gear weights file of a stage model (``final.pth``) as it is, e.g.
  ``{'tokenizer_ema.module': 'tokenizer'}`` takes stage 1's EMA tokenizer;
- an official GEAR bundle (stage 0 / 1 of the official trainers, the released Warmup-* /
  GEAR-* files) under the same names (``vq`` -> ``tokenizer``, ``vq_ema`` ->
  ``tokenizer_ema.module``, ``discriminator``, ``ar`` -> ``prior.ar``, ``ema`` ->
  ``prior_ema.module.ar``, projectors; ``gear.models.converters.gear_official``), so the
  modules that read a gear ``final.pth`` read it too, and take what the official takes;
- a gear tokenizer weights file (``tools/model_converters``; its keys start with ``encoder.``),
  a released raw / LlamaGen / Lightning VQ / LFQ / IBQ checkpoint (converted; Lightning: its
  LitEma weights), and one entry of a bundle picked with ``key`` (e.g. ``'vq'``) under
  ``tokenizer.``.
An EMA copy whose source module is loaded but which is not loaded itself starts equal to it.

The runner applies ``init_from`` once, before it wraps the model (so DeepSpeed's master weights
start from the loaded values), and skips it when the weights come from a checkpoint anyway
(``--resume``, ``load_from``); ``gear.apis.load_model`` never runs it. Resuming or sampling
therefore never needs the earlier stage's file.
"""
import argparse
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from gear.utils.checkpoint import (SCHEMA_VERSION, CheckpointError, load_file,
                                   load_state_dict_strict)
from gear.utils.download import DownloadError
from gear.utils.model_index import resolve_checkpoint

from .converters.gear_official import convert_official_bundle, is_official_bundle
from .converters.tokenizers import convert_tokenizer

ENTRY_KEYS = ('checkpoint', 'modules', 'key')


def check_init_from(init_from: Optional[Sequence[dict]]) -> List[dict]:
    """Validate ``init_from``; errors name the entry and key (``model.init_from[i].modules``)."""
    if init_from is None:
        return []
    if isinstance(init_from, dict) or not isinstance(init_from, (list, tuple)):
        raise TypeError(f'model.init_from must be a list of dict(checkpoint=..., modules=...), '
                        f'got {type(init_from).__name__}: {init_from!r}')
    entries = []
    for i, entry in enumerate(init_from):
        where = f'model.init_from[{i}]'
        if not isinstance(entry, dict):
            raise TypeError(f'{where} must be a dict, got {type(entry).__name__}')
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if unknown:
            raise KeyError(f'{where} has unknown key(s) {unknown}; known: {list(ENTRY_KEYS)}')
        if not isinstance(entry.get('checkpoint'), str) or not entry['checkpoint']:
            raise ValueError(f'{where}.checkpoint must be a file path, got {entry.get("checkpoint")!r}')
        modules = entry.get('modules')
        if isinstance(modules, str):  # the command-line form 'src:dst,src:dst'
            pairs = [pair.split(':', 1) for pair in modules.split(',')]
            if not all(len(pair) == 2 for pair in pairs):
                raise ValueError(f"{where}.modules: write 'src:dst[,src:dst]', got {modules!r}")
            modules = dict(pairs)
        if not isinstance(modules, dict) or not modules or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in modules.items()):
            raise ValueError(f'{where}.modules must map source prefixes to attributes, e.g. '
                             f"{{'tokenizer_ema.module': 'tokenizer'}}; got {modules!r}")
        entries.append(dict(checkpoint=entry['checkpoint'], modules=dict(modules),
                            key=entry.get('key')))
    return entries


def read_checkpoint(path: str) -> dict:
    """Read a checkpoint safely (tensors, containers and the ``argparse.Namespace`` that some
    released bundles carry)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = load_file(path, weights_only=True)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: expected a dict, got {type(ckpt).__name__}')
    return ckpt


def tokenizer_weights(ckpt: dict, path: str, key: Optional[str] = None) -> Dict[str, Tensor]:
    """The gear-named tokenizer state dict of ``ckpt`` (read from ``path``): a gear tokenizer
    weights file as it is, a released VQ / LFQ / IBQ checkpoint (LlamaGen, Open-MAGVIT2, IBQ,
    GEAR) converted (``key``: its bundle entry)."""
    if 'schema_version' in ckpt:
        _check_schema(path, ckpt)
        if not is_tokenizer_file(ckpt):
            raise CheckpointError(f'{path} is a stage model weights file, not a tokenizer one: '
                                  "take its tokenizer with modules={'tokenizer_ema.module': ...}")
        return ckpt['state_dict']
    try:
        return convert_tokenizer(ckpt, key=key)[1]
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f'{path}: not a gear weights file nor a released VQ / LFQ / IBQ '
                              f'checkpoint: {e}') from e


def source_state_dict(path: str, key: Optional[str] = None,
                      teacher_names: Optional[Sequence[str]] = None) -> Dict[str, Tensor]:
    """``path`` as a state dict under gear's model key names (see the module docstring);
    ``teacher_names`` (the model's, in order) name an official bundle's projectors."""
    ckpt = read_checkpoint(path)
    if 'schema_version' in ckpt and not is_tokenizer_file(_check_schema(path, ckpt)):
        if key is not None:
            raise CheckpointError(f'{path} is a gear weights file: init_from key={key!r} only '
                                  'selects an entry of a released bundle; drop it')
        return ckpt['state_dict']
    if key is None and is_official_bundle(ckpt):
        try:
            return convert_official_bundle(ckpt, teacher_names)
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f'{path}: not a readable official GEAR bundle: {e}') from e
    return {f'tokenizer.{k}': v for k, v in tokenizer_weights(ckpt, path, key).items()}


def is_tokenizer_file(ckpt: dict) -> bool:
    """A gear weights file of a tokenizer alone (keys ``encoder.*``), not of a stage model."""
    return any(k.startswith('encoder.') for k in ckpt['state_dict'])


def _check_schema(path: str, ckpt: dict) -> dict:
    if ckpt['schema_version'] != SCHEMA_VERSION:
        raise CheckpointError(f'{path} has schema_version {ckpt["schema_version"]!r}; '
                              f'this gear reads {SCHEMA_VERSION}')
    if 'state_dict' not in ckpt:
        raise CheckpointError(f'{path} is not a gear weights file (no "state_dict" key)')
    return ckpt


def load_submodules(model: nn.Module, state_dict: Dict[str, Tensor], modules: Dict[str, str],
                    source: str) -> None:
    """Load ``state_dict[src.*]`` into ``model.<dst>`` strictly, for each ``src: dst``."""
    for src, dst in modules.items():
        prefix = src + '.'
        part = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not part:
            prefixes = sorted({k.split('.')[0] for k in state_dict})
            raise CheckpointError(f'{source} has no weights under {src!r} (it has: {prefixes})')
        try:
            target = model.get_submodule(dst)
        except AttributeError as e:
            raise CheckpointError(f'{source}: {type(model).__name__} has no module {dst!r}') from e
        load_state_dict_strict(target, part, source=f'{source} [{src}]')


def apply_init_from(model: nn.Module, entries: List[dict], ema_of: Dict[str, str]) -> List[str]:
    """Load every entry into ``model``; then start each EMA copy (``ema_of``: EMA attribute ->
    averaged attribute) whose source was loaded but which was not, from its source.
    Returns the attributes loaded."""
    loaded = []
    for i, entry in enumerate(entries):
        source = f"model.init_from[{i}] ({entry['checkpoint']})"
        try:  # a path as it is, or a model-zoo name (downloaded, verified, cached)
            path = resolve_checkpoint(entry['checkpoint'])
        except (FileNotFoundError, DownloadError) as e:
            raise CheckpointError(f'model.init_from[{i}].checkpoint: {e}') from e
        teachers = getattr(model, 'teachers', None)
        state_dict = source_state_dict(path, entry['key'],
                                       list(teachers) if teachers is not None else None)
        load_submodules(model, state_dict, entry['modules'], source)
        loaded += entry['modules'].values()

    def covered(name: str) -> bool:
        return any(d == name or d.startswith(name + '.') for d in loaded)

    for ema, src in ema_of.items():
        if covered(src) and not covered(ema):
            getattr(model, ema).module.load_state_dict(getattr(model, src).state_dict())
    return loaded
