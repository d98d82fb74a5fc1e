"""Rebuild trained gear models and tokenizers from checkpoints, for sampling and evaluation.

Two kinds of file load (see ``gear.utils.checkpoint``):

- a *weights file* (``final.pth``, written by ``ExportWeightsHook``, or a model-zoo file): the
  model is rebuilt from ``arch['model']`` (or from ``config`` when given) and loaded strictly;
- a *training checkpoint* (``iter_N.pth``, mmengine's format) together with ``config``, the
  config file of the run that wrote it.

``load_tokenizer`` and ``load_generator`` also take a model-zoo name (``'gear-vq16'``,
``'llamagen-c2i-l'``; ``model-index.yml``): downloaded, verified, converted and cached by
``gear.apis.zoo``.

Either way the model's ``init_from`` (the earlier stage's weights, applied only by
``init_weights``) is NOT run: every weight comes from the checkpoint, so the files an earlier
stage wrote need not exist any more. Frozen teachers and perceptual nets
are built from their offline weights; they are not in checkpoints.
"""
import logging
import os.path as osp
import re
from typing import Optional, Tuple

from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from torch import nn

from gear.models.converters.tokenizers import checkpoint_family, infer_tokenizer_arch
from gear.models.generator import generator_parts
from gear.models.init_from import is_tokenizer_file, read_checkpoint, tokenizer_weights
from gear.registry import MODELS, TOKENIZERS
from gear.utils.checkpoint import SCHEMA_VERSION, CheckpointError, load_file, load_state_dict_strict
from gear.utils.model_index import find_entry, unknown_name_error

from .zoo import load_zoo_generator, load_zoo_tokenizer

logger = logging.getLogger(__name__)


def _read_model_config(config: str) -> dict:
    cfg = Config.fromfile(config)
    if 'model' not in cfg:
        raise CheckpointError(f'config {config} has no "model" entry')
    return cfg.model.to_dict()


def _read_checkpoint(checkpoint: str, config: Optional[str]) -> Tuple[dict, dict]:
    """(model config, state dict) of ``checkpoint``; ``config`` overrides its ``arch``."""
    try:
        ckpt = load_file(checkpoint, weights_only=True)
    except CheckpointError as e:  # missing, corrupt, or a training checkpoint (mmengine pickles)
        if config is None:
            if not osp.isfile(checkpoint):
                raise
            raise CheckpointError(f'{e}; if {checkpoint} is a training checkpoint (iter_N.pth), '
                                  'give the config of its run as well') from e
        ckpt = None
    if ckpt is None or 'schema_version' not in ckpt:  # a training checkpoint
        if config is None:
            raise CheckpointError(
                f'{checkpoint} is not a gear weights file (no "schema_version"); to load a '
                'training checkpoint (iter_N.pth) give the config of its run as well')
        if ckpt is None:  # only read with pickles when the user named the run's config
            ckpt = load_file(checkpoint, weights_only=False)
        if not isinstance(ckpt, dict) or 'state_dict' not in ckpt:
            raise CheckpointError(f'{checkpoint} has no "state_dict": not a gear checkpoint')
        state_dict = {re.sub(r'^module\.', '', k): v for k, v in ckpt['state_dict'].items()}
        return _read_model_config(config), state_dict
    if ckpt['schema_version'] != SCHEMA_VERSION:
        raise CheckpointError(f'{checkpoint} has schema_version {ckpt["schema_version"]!r}; '
                              f'this gear reads {SCHEMA_VERSION}')
    if 'state_dict' not in ckpt:
        raise CheckpointError(f'{checkpoint} is not a gear weights file (no "state_dict" key)')
    if config is not None:
        return _read_model_config(config), ckpt['state_dict']
    model_cfg = (ckpt.get('arch') or {}).get('model')
    if not model_cfg:
        raise CheckpointError(
            f'{checkpoint} has no model config (arch["model"] is missing): it cannot be rebuilt '
            'on its own; give the config it was trained with')
    return model_cfg, ckpt['state_dict']


def load_model(checkpoint: str, config: Optional[str] = None, device: str = 'cpu') -> BaseModel:
    """Rebuild the model stored in ``checkpoint`` and load its weights strictly.

    Args:
        checkpoint: a gear weights file (``final.pth``), or a training checkpoint
            (``iter_N.pth``) when ``config`` is given.
        config: config file of the run; required for a training checkpoint, and for a weights
            file it replaces the model config stored in the file.
        device: where the model goes.

    Returns:
        The model, in eval mode, on ``device``.

    Raises:
        CheckpointError: the file is missing or unreadable, has no model config, or its
            weights do not match the model (the message names the file and the keys).
    """
    model_cfg, state_dict = _read_checkpoint(checkpoint, config)
    if 'type' not in model_cfg:
        raise CheckpointError(f'the model config of {checkpoint} has no "type"')
    with DefaultScope.overwrite_default_scope('gear'):
        model = MODELS.build(model_cfg)  # init_weights (and so init_from) is not called
    load_state_dict_strict(model, state_dict, source=checkpoint)
    return model.to(device).eval()


def _zoo_name(name_or_path: str) -> bool:
    """True for a model-zoo name; a path is a path; anything else is FileNotFoundError."""
    if osp.exists(name_or_path):
        return False
    if find_entry(name_or_path) is not None:
        return True
    raise unknown_name_error(name_or_path)


def tokenizer_state(path: str, key: Optional[str] = None,
                    use_ema: bool = True) -> Tuple[dict, dict]:
    """(TOKENIZERS config, gear state dict) of the tokenizer a file holds (see ``load_tokenizer``)."""
    ckpt = read_checkpoint(path)
    if 'schema_version' in ckpt and 'state_dict' in ckpt and not is_tokenizer_file(ckpt):
        if 'tok_embeddings.weight' in ckpt['state_dict']:
            raise CheckpointError(f'{path} is a GPT weights file: it holds no tokenizer')
        model_cfg, state_dict = _read_checkpoint(path, None)  # a stage model's weights file
        if 'tokenizer' not in model_cfg:
            raise CheckpointError(f'{path}: its {model_cfg.get("type")} has no tokenizer')
        prefixes = (['tokenizer_ema.module.'] if use_ema else []) + ['tokenizer.']
        for prefix in prefixes:  # stage 0 / 1 train an EMA tokenizer; stage 2 has one, frozen
            part = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
            if part:
                return dict(model_cfg['tokenizer']), part
        raise CheckpointError(f'{path} has no weights under {" or ".join(prefixes)}')
    state_dict = tokenizer_weights(ckpt, path, key)
    arch = ckpt.get('arch') if 'schema_version' in ckpt else None
    arch = dict(arch) if arch else infer_tokenizer_arch(state_dict)
    arch.setdefault('type', 'VQTokenizer')  # files written before the LFQ / IBQ families
    return arch, state_dict


def load_tokenizer(path: str, key: Optional[str] = None, use_ema: bool = True,
                   device: str = 'cpu') -> nn.Module:
    """A tokenizer, ready to ``encode`` / ``decode``, from any file that holds one, or a zoo name.

    Args:
        path: a model-zoo name (``'gear-vq16'``: downloaded, verified, converted once and
            cached; ``model_zoo.md``), a stage weights file (``final.pth`` of any stage: its EMA
            tokenizer when ``use_ema`` and the stage trains one, else its tokenizer), a gear
            tokenizer weights file (``tools/model_converters``), or a released VQ / LFQ / IBQ
            checkpoint (LlamaGen, Open-MAGVIT2, IBQ, GEAR; converted, the architecture read
            from the weights).
        key: the bundle entry of a released checkpoint (e.g. ``'vq_ema'``); None: for a zoo
            name the entry's ``Metadata.Key`` (``vq_ema`` for the GEAR / Warm-up bundles), for
            a file the converter's choice.
        use_ema: for a stage weights file, its EMA tokenizer.
        device: where the tokenizer goes.

    Returns:
        The tokenizer, in eval mode (for a zoo name, ``zoo_info`` records entry, file and key).

    Raises:
        FileNotFoundError: neither a file nor a zoo name (with did-you-mean suggestions).
        CheckpointError: naming the file when it holds no tokenizer or does not match (or the
            zoo entry is a generator).
        DownloadError: a zoo file could not be downloaded or verified.
    """
    if _zoo_name(path):
        return load_zoo_tokenizer(path, key=key, device=device)
    arch, state_dict = tokenizer_state(path, key, use_ema)
    with DefaultScope.overwrite_default_scope('gear'):
        tokenizer = TOKENIZERS.build(arch)
    load_state_dict_strict(tokenizer, state_dict, source=path)
    return tokenizer.to(device).eval()


def load_generator(checkpoint: str, config: Optional[str] = None, device: str = 'cpu',
                   key: Optional[str] = None) -> BaseModel:
    """A stage model that generates images (GEAR or FrozenTokenizerAR), as ``load_model``, or
    the model-zoo generator ``checkpoint`` names.

    For a zoo GPT (``'llamagen-c2i-l'``) this is a ``FrozenTokenizerAR`` from the entry's
    Config: the converted GPT loaded strictly into its AR and the AR's EMA copy, the entry's
    ``Metadata.Tokenizer`` as tokenizer. The REPA projector is not part of a c2i GPT release:
    it is left untrained and is unused for sampling. ``key`` picks the GPT's bundle entry
    (default: the entry's ``Metadata.Key``).

    Raises:
        FileNotFoundError: neither a file nor a zoo name (with did-you-mean suggestions).
        CheckpointError: the file holds a tokenizer only, or the zoo entry is a tokenizer.
        TypeError: the checkpoint's model has no AR prior (e.g. a stage-0 tokenizer).
    """
    if _zoo_name(checkpoint):
        return load_zoo_generator(checkpoint, key=key, device=device)
    if config is None:
        ckpt = read_checkpoint(checkpoint)
        if 'schema_version' in ckpt and 'state_dict' in ckpt and is_tokenizer_file(ckpt):
            raise CheckpointError(f'{checkpoint} is a tokenizer weights file with no AR '
                                  'generator: load it with load_tokenizer')
        if 'schema_version' not in ckpt:
            try:
                family = checkpoint_family(ckpt)
            except (KeyError, TypeError):
                family = None
            if family is not None:
                raise CheckpointError(f'{checkpoint} is a released {family} tokenizer checkpoint '
                                      'with no AR generator: load it with load_tokenizer')
    model = load_model(checkpoint, config, device)
    generator_parts(model)  # raises TypeError naming the model when it cannot generate
    return model
