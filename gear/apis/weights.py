"""Load tokenizer weights from a gear weights file or a released checkpoint, strictly.

Released LlamaGen / GEAR files are converted on the fly (``gear.models.converters``); gear
weights files (``{'schema_version', 'arch', 'state_dict'}``) load as they are. Every file is
read with ``weights_only=True``; ``argparse.Namespace`` (the training arguments some released
bundles carry) is the one extra type allowed.
"""
import argparse
from typing import Optional

import torch
from torch import nn

from gear.models.converters.llamagen_vq import convert_llamagen_vq
from gear.utils.checkpoint import SCHEMA_VERSION, CheckpointError, load_file, load_state_dict_strict


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
