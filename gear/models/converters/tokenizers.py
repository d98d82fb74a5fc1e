"""Any released tokenizer checkpoint -> gear: tell the family (VQ / LFQ / IBQ) from the key
names, convert with that family's converter, read the architecture off the shapes.

The families differ in their codec's names, so a state dict says which it is:

| family | released by | tell-tale keys |
|---|---|---|
| ``vq`` | LlamaGen, GEAR-VQ | ``encoder.conv_blocks.*`` |
| ``lfq`` | Open-MAGVIT2, GEAR-LFQ | ``encoder.down.*``, ``decoder.adaptive.*``, no codebook |
| ``ibq`` | IBQ, GEAR-IBQ | ``encoder.down.*.block``, ``quantize.embedding.weight`` |

EMA: Open-MAGVIT2's and IBQ's Lightning checkpoints are read with their LitEma shadows by default
(``prefer_ema=None``), as their own inference and the official GEAR loader read them; a GEAR or
LlamaGen bundle gives the entry ``key`` names, else the first of ``ENTRY_KEYS`` that holds a
tokenizer (``vq_ema`` before ``vq``).
"""
from typing import Any, Dict, Iterator, Optional, Tuple

from torch import Tensor

from gear.utils.checkpoint import strip_prefixes

from .ibq import convert_ibq, holds_ibq, infer_ibq_arch
from .llamagen_vq import convert_llamagen_vq, infer_arch
from .open_magvit2 import convert_lfq, holds_lfq, infer_lfq_arch

CONVERTERS = dict(vq=convert_llamagen_vq, lfq=convert_lfq, ibq=convert_ibq)
# Where a bundle may keep a tokenizer's state dict, in the order they are looked at: an official
# GEAR bundle gives ``vq_ema`` before the live ``vq``, the official loaders' default
# (``--vq-use-ema``, ``--use-vq-ema``).
ENTRY_KEYS = ('state_dict', 'model', 'vq_ema', 'vq', 'ema')  # convert_tokenizer keeps the order


def holds_vq(state_dict: Any) -> bool:
    """Whether ``state_dict`` is a LlamaGen-style VQ tokenizer's (``encoder.conv_blocks.*``)."""
    return isinstance(state_dict, dict) and any(
        k.startswith('encoder.conv_blocks.') for k in strip_prefixes(state_dict))


def family_of(state_dict: Any) -> Optional[str]:
    """'vq', 'lfq' or 'ibq' for a tokenizer state dict (released or gear names), else None."""
    for family, holds in (('lfq', holds_lfq), ('ibq', holds_ibq), ('vq', holds_vq)):
        if holds(state_dict):
            return family
    return None


def _entries(checkpoint: Dict[str, Any], key: Optional[str]) -> Iterator[Any]:
    if key is not None:
        yield checkpoint.get(key)
        return
    for k in ENTRY_KEYS:
        yield checkpoint.get(k)
    yield checkpoint


def checkpoint_family(checkpoint: Dict[str, Any], key: Optional[str] = None) -> str:
    """The family of the tokenizer ``checkpoint`` holds (at ``key`` when given).

    Raises:
        KeyError: no entry holds the weights of a known tokenizer family.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'expected a dict checkpoint, got {type(checkpoint).__name__}')
    if key is not None and key not in checkpoint:
        raise KeyError(f'checkpoint has no key {key!r}; it has {sorted(checkpoint)}')
    for entry in _entries(checkpoint, key):
        family = family_of(entry)
        if family:
            return family
    where = f'its entry {key!r}' if key is not None else f'any of {sorted(checkpoint)[:12]}'
    raise KeyError(f'no VQ / LFQ / IBQ tokenizer weights in {where} (looked for '
                   'encoder.conv_blocks.*, decoder.adaptive.*, quantize.embedding.weight)')


def is_lightning_with_ema(checkpoint: Dict[str, Any]) -> bool:
    """An Open-MAGVIT2 / IBQ Lightning checkpoint carrying LitEma shadows (``model_ema.*``)."""
    inner = checkpoint.get('state_dict')
    return isinstance(inner, dict) and any(str(k).startswith('model_ema.') for k in inner)


def convert_tokenizer(checkpoint: Dict[str, Any], key: Optional[str] = None,
                      prefer_ema: Optional[bool] = None) -> Tuple[str, Dict[str, Tensor]]:
    """A released tokenizer checkpoint of any family -> (family, gear state dict).

    Args:
        checkpoint: a raw state dict or a bundle (GEAR, LlamaGen, Lightning).
        key: the bundle entry to read (e.g. ``'vq_ema'``); None picks one.
        prefer_ema: take EMA weights where the checkpoint has them; None: True for a Lightning
            checkpoint with LitEma shadows (its release's default), False otherwise.
    """
    family = checkpoint_family(checkpoint, key)
    if key is None and 'schema_version' not in checkpoint and family_of(checkpoint.get('vq_ema')):
        key = 'vq_ema'  # an official GEAR bundle: its EMA tokenizer, the official default
    if prefer_ema is None:
        prefer_ema = key is None and is_lightning_with_ema(checkpoint)
    return family, CONVERTERS[family](checkpoint, key=key, prefer_ema=prefer_ema)


def infer_tokenizer_arch(state_dict: Dict[str, Tensor], resolution: int = 256) -> Dict[str, Any]:
    """``TOKENIZERS`` config (with ``type``) read off a gear tokenizer state dict's shapes.

    ``resolution`` places an IBQ codec's attention (the released IBQ-16 works at 256 px).
    """
    family = family_of(state_dict)
    if family == 'lfq':
        return infer_lfq_arch(state_dict)
    if family == 'ibq':
        return infer_ibq_arch(state_dict, resolution=resolution)
    if family == 'vq':
        return dict(infer_arch(state_dict), type='VQTokenizer')
    raise KeyError('not a VQ / LFQ / IBQ tokenizer state dict: '
                   f'{sorted(state_dict)[:6]}{" ..." if len(state_dict) > 6 else ""}')
