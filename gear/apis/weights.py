"""Load weights into gear modules strictly: tokenizers from gear weights files or released
checkpoints, and stage-to-stage initialisation of sub-modules.

Released LlamaGen / GEAR files are converted on the fly (``gear.models.converters``); gear
weights files (``{'schema_version', 'arch', 'state_dict'}``) load as they are. Every file is
read with ``weights_only=True``; ``argparse.Namespace`` (the training arguments some released
bundles carry) is the one extra type allowed.
"""
import argparse
from typing import Dict, Optional

import torch
from torch import nn

from gear.models.converters.llamagen_vq import convert_llamagen_vq
from gear.utils.checkpoint import (SCHEMA_VERSION, CheckpointError, load_file,
                                   load_state_dict_strict, load_weights)


def read_checkpoint(path: str) -> dict:
    """Read any tokenizer checkpoint safely (tensors, containers and ``argparse.Namespace``)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = load_file(path, weights_only=True)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: expected a dict, got {type(ckpt).__name__}')
    return ckpt


def tokenizer_state_dict(path: str, key: Optional[str] = None) -> dict:
    """The gear-named tokenizer state dict stored in ``path`` (converted when released)."""
    ckpt = read_checkpoint(path)
    if 'schema_version' in ckpt:
        if ckpt['schema_version'] != SCHEMA_VERSION:
            raise CheckpointError(f'{path} has schema_version {ckpt["schema_version"]!r}; '
                                  f'this gear reads {SCHEMA_VERSION}')
        return ckpt['state_dict']
    try:
        return convert_llamagen_vq(ckpt, key=key)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f'{path}: not a gear weights file nor a released VQ checkpoint: {e}') from e


def load_tokenizer_weights(tokenizer: nn.Module, path: str, key: Optional[str] = None) -> nn.Module:
    """Load ``path`` into ``tokenizer`` strictly; a mismatch names the file and the first keys."""
    load_state_dict_strict(tokenizer, tokenizer_state_dict(path, key), source=path)
    return tokenizer


def load_submodules(model: nn.Module, path: str, modules: Dict[str, str]) -> nn.Module:
    """Initialise sub-modules of ``model`` from a gear weights file, strictly, prefix by prefix.

    How a stage starts from an earlier one: e.g. stage 1 takes ``{'tokenizer': 'tokenizer',
    'tokenizer_ema': 'tokenizer_ema', 'discriminator': 'discriminator'}`` from stage 0's
    ``final.pth``; stage 2 takes ``{'tokenizer_ema.module': 'tokenizer'}`` (the EMA tokenizer).

    Args:
        model: the model whose attributes are filled.
        path: a gear weights file (``ExportWeightsHook`` writes one at the end of every stage).
        modules: source key prefix in the file -> dotted attribute path in ``model``.
    """
    state_dict = load_weights(path)['state_dict']
    for src, dst in modules.items():
        prefix = src + '.'
        part = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not part:
            prefixes = sorted({k.split('.')[0] for k in state_dict})
            raise CheckpointError(f'{path} has no weights under {src!r} (it has: {prefixes})')
        load_state_dict_strict(model.get_submodule(dst), part, source=f'{path} [{src}]')
    return model
