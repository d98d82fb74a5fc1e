"""Rebuild trained gear models and tokenizers from checkpoints, for sampling and evaluation.

Two kinds of file load (see ``gear.utils.checkpoint``):

- a *weights file* (``final.pth``, written by ``ExportWeightsHook``, or a model-zoo file): the
  model is rebuilt from ``arch['model']`` (or from ``config`` when given) and loaded strictly;
- a *training checkpoint* (``iter_N.pth``, mmengine's format) together with ``config``, the
  config file of the run that wrote it.

Either way the model's ``init_from`` (the earlier stage's weights, applied only by
``init_weights``) is NOT run: every weight comes from the checkpoint, so the files an earlier
stage wrote need not exist any more. Frozen teachers and perceptual nets
are built from their offline weights; they are not in checkpoints.
"""
import os.path as osp
import re
from typing import Optional, Tuple

from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from torch import nn

from gear.models.converters.tokenizers import infer_tokenizer_arch
from gear.models.generator import generator_parts
from gear.models.init_from import is_tokenizer_file, read_checkpoint, tokenizer_weights
from gear.registry import MODELS, TOKENIZERS
from gear.utils.checkpoint import SCHEMA_VERSION, CheckpointError, load_file, load_state_dict_strict

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


def load_tokenizer(path: str, key: Optional[str] = None, use_ema: bool = True,
                   device: str = 'cpu') -> nn.Module:
    """A tokenizer, ready to ``encode`` / ``decode``, from any file that holds one.

    Args:
        path: a stage weights file (``final.pth`` of any stage: its EMA tokenizer when
            ``use_ema`` and the stage trains one, else its tokenizer), a gear tokenizer weights
            file (``tools/model_converters``), or a released VQ / LFQ / IBQ checkpoint (LlamaGen,
            Open-MAGVIT2, IBQ, GEAR; converted, the architecture read from the weights).
        key: the bundle entry of a released checkpoint (e.g. ``'vq_ema'``); None picks one.
        use_ema: for a stage weights file, its EMA tokenizer.
        device: where the tokenizer goes.

    Returns:
        The tokenizer, in eval mode.

    Raises:
        CheckpointError: naming the file when it holds no tokenizer or does not match.
    """
    ckpt = read_checkpoint(path)
    if 'schema_version' in ckpt and 'state_dict' in ckpt and not is_tokenizer_file(ckpt):
        model = load_model(path, device=device)  # a stage model's weights file
        ema = getattr(model, 'tokenizer_ema', None)
        return (ema.module if use_ema and ema is not None else model.tokenizer).eval()
    state_dict = tokenizer_weights(ckpt, path, key)
    arch = ckpt.get('arch') if 'schema_version' in ckpt else None
    arch = dict(arch) if arch else infer_tokenizer_arch(state_dict)
    arch.setdefault('type', 'VQTokenizer')  # files written before the LFQ / IBQ families
    with DefaultScope.overwrite_default_scope('gear'):
        tokenizer = TOKENIZERS.build(arch)
    load_state_dict_strict(tokenizer, state_dict, source=path)
    return tokenizer.to(device).eval()


def load_generator(checkpoint: str, config: Optional[str] = None, device: str = 'cpu') -> BaseModel:
    """A stage model that generates images (GEAR or FrozenTokenizerAR), as ``load_model``.

    Raises:
        TypeError: the checkpoint's model has no AR prior (e.g. a stage-0 tokenizer).
    """
    model = load_model(checkpoint, config, device)
    generator_parts(model)  # raises TypeError naming the model when it cannot generate
    return model
