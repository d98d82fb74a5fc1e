"""Released Open-MAGVIT2 / GEAR-LFQ checkpoints <-> gear's ``LFQTokenizer`` state dict (pure functions).

Accepted inputs:

- a raw state dict with the released names (``encoder.*``, ``decoder.*``);
- Open-MAGVIT2's Lightning checkpoint ``{'state_dict': {...}, 'optimizer_states': ..., ...}``
  whose state dict also holds the LitEma shadows ``model_ema.<name without dots>`` (plus
  ``model_ema.decay`` / ``model_ema.num_updates``) and the training loss ``loss.*``
  (discriminator, perceptual net); ``prefer_ema`` loads the shadows instead of the live weights;
- an official GEAR bundle ``{'vq', 'vq_ema', 'ar', 'ema', 'projectors', 'discriminator',
  optimizer states, 'args', 'steps'}``: ``key`` selects an entry, ``prefer_ema`` takes ``vq_ema``.

Wrapper prefixes (``module.``, ``_orig_mod.``) are stripped and training-only entries dropped;
any other unknown key is an error naming it. The quantizer has no parameters (its codebook
{-1, +1}^k is implied by ``encoder.conv_out``), so the names are the same on both sides.
"""
from typing import Any, Dict, Optional, Tuple

from torch import Tensor

from gear.utils.checkpoint import strip_prefixes

from .common import select_entry, unknown_keys_error

MODEL_PREFIXES: Tuple[str, ...] = ('encoder.', 'decoder.')
EMA_PREFIX = 'model_ema.'
EMA_COUNTERS: Tuple[str, ...] = ('decay', 'num_updates')
# Training-only modules of either release (Open-MAGVIT2's ``loss`` holds the discriminator and
# LPIPS; LitEma shadows them too, as ``model_ema.loss...``).
TRAINING_ONLY_PREFIXES: Tuple[str, ...] = (
    'loss.', 'discriminator.', 'disc.', 'perceptual_loss.', 'lpips.')
# Bundle keys tried in order when ``key`` is None (GEAR: ``vq`` / ``vq_ema``; Lightning and
# generic wrappers: ``state_dict`` / ``model``). The AR's ``ema`` holds no encoder weights and
# is never picked.
BUNDLE_KEYS: Tuple[str, ...] = ('state_dict', 'model', 'vq', 'vq_ema')
EMA_BUNDLE_KEYS: Tuple[str, ...] = ('vq_ema', 'state_dict', 'model', 'vq')


def holds_lfq(state_dict: Any) -> bool:
    """Whether ``state_dict`` (released or gear names) is an Open-MAGVIT2 / LFQ tokenizer's:
    ``encoder.down.*`` and ``decoder.adaptive.*`` present and no learnt codebook."""
    if not isinstance(state_dict, dict):
        return False
    names = strip_prefixes(state_dict)
    return (any(k.startswith('encoder.down.') for k in names)
            and any(k.startswith('decoder.adaptive.') for k in names)
            and not any('.embedding.' in k and k.startswith(('quantize.', 'quantizer.'))
                        for k in names))


def _holds_encoder(obj: Any) -> bool:
    return isinstance(obj, dict) and any(k.startswith('encoder.') for k in strip_prefixes(obj))


def convert_lfq(checkpoint: Dict[str, Any], key: Optional[str] = None,
                prefer_ema: bool = False) -> Dict[str, Tensor]:
    """Released Open-MAGVIT2 / GEAR-LFQ checkpoint -> state dict of gear's ``LFQTokenizer``.

    Args:
        checkpoint: raw state dict, Lightning checkpoint or GEAR bundle (module docstring).
        key: bundle key, e.g. ``'vq_ema'``; None picks the first of ``BUNDLE_KEYS``
            (``EMA_BUNDLE_KEYS`` when ``prefer_ema``) that holds encoder weights.
        prefer_ema: take the EMA weights: the ``vq_ema`` entry of a GEAR bundle, or the
            ``model_ema.*`` shadows of a Lightning state dict. A state dict without shadows
            keeps its live weights (as ``convert_llamagen_vq`` falls back to the live entry);
            one whose shadows cover only part of the codec is an error.

    Raises:
        ValueError: naming the keys that are neither codec weights nor known training-only
            entries, or the codec keys without an EMA shadow.
    """
    order = EMA_BUNDLE_KEYS if prefer_ema else BUNDLE_KEYS
    state_dict = strip_prefixes(select_entry(checkpoint, key, order, _holds_encoder, 'LFQ tokenizer'))
    live, shadows, unknown = {}, {}, []
    for name, value in state_dict.items():
        if name.startswith(MODEL_PREFIXES):
            live[name] = value
        elif name.startswith(EMA_PREFIX):
            shadows[name[len(EMA_PREFIX):]] = value
        elif not name.startswith(TRAINING_ONLY_PREFIXES):
            unknown.append(name)
    by_shadow_name = {name.replace('.', ''): name for name in live}
    for shadow in shadows:  # every shadow must be a codec weight, a counter or the loss's
        if shadow not in by_shadow_name and shadow not in EMA_COUNTERS \
                and not shadow.startswith('loss'):
            unknown.append(EMA_PREFIX + shadow)
    if unknown:
        raise unknown_keys_error(unknown, 'LFQ')
    codec_shadows = {by_shadow_name[s]: v for s, v in shadows.items() if s in by_shadow_name}
    if not (prefer_ema and codec_shadows):
        return live
    missing = sorted(set(live) - set(codec_shadows))
    if missing:
        raise ValueError(f'prefer_ema: {len(missing)} codec keys have no {EMA_PREFIX} shadow: '
                         f'{", ".join(missing[:10])}')
    return {name: codec_shadows[name] for name in live}


def to_released_lfq(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """gear ``LFQTokenizer`` state dict -> released key names (the same names: identity on the
    codec keys, kept for symmetry with ``to_llamagen_vq``); any other key is an error."""
    state_dict = strip_prefixes(state_dict)
    unknown = [k for k in state_dict if not k.startswith(MODEL_PREFIXES)]
    if unknown:
        raise unknown_keys_error(unknown, 'LFQ')
    return dict(state_dict)


def infer_lfq_arch(state_dict: Dict[str, Tensor]) -> Dict[str, Any]:
    """``LFQTokenizer`` kwargs (with ``type='LFQTokenizer'``) read off the shapes of a gear
    (or released) LFQ state dict."""
    ch = state_dict['encoder.conv_in.weight'].shape[0]
    levels = sorted({int(k.split('.')[2]) for k in state_dict if k.startswith('encoder.down.')})
    ch_mult = tuple(state_dict[f'encoder.down.{i}.block.0.conv1.weight'].shape[0] // ch
                    for i in levels)
    num_res_blocks = len({k.split('.')[4] for k in state_dict
                          if k.startswith('encoder.down.0.block.')})
    z_channels = state_dict['encoder.conv_out.weight'].shape[0]
    return dict(type='LFQTokenizer', ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks,
                z_channels=z_channels, in_channels=state_dict['encoder.conv_in.weight'].shape[1],
                quantizer=dict(type='LookupFreeQuantizer', codebook_size=2**z_channels))
