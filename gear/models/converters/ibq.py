"""Released IBQ / GEAR-IBQ checkpoints <-> gear's ``IBQTokenizer`` state dict (pure functions).

Accepted inputs:
- a raw released state dict (``encoder.*``, ``decoder.*``, ``quant_conv.*``,
  ``post_quant_conv.*``, ``quantize.embedding.weight``);
- TencentARC IBQ's Lightning checkpoint ``{'state_dict': {...}, 'epoch', 'optimizer_states',
  ...}``, whose state dict also holds the training loss (``loss.*``: discriminator, LPIPS) and
  the LitEma shadows ``model_ema.<parameter name with the dots removed>`` with
  ``model_ema.decay`` / ``model_ema.num_updates``. ``prefer_ema`` loads the shadows in place of
  the live weights;
- a GEAR stage-0/1 bundle ``{'vq', 'vq_ema', 'ar', 'ema', 'projectors', 'discriminator',
  optimizer states, 'args', 'steps'}`` (``vq_ema`` with ``prefer_ema``).
Only the quantizer's prefix is renamed (``quantize.`` released, ``quantizer.`` in gear); wrapper
prefixes (``module.``, ``_orig_mod.``) and training-only entries are dropped; anything else
unknown is an error naming the keys.
"""
import re
from typing import Any, Dict, Optional, Tuple

from torch import Tensor

from gear.utils.checkpoint import strip_prefixes

from .common import select_entry, unknown_keys_error

# IBQ-16 as released by TencentARC (``imagenet_ibqgan_16384.yaml``) and fine-tuned by GEAR:
# IBQTokenizer kwargs.
IBQ16_ARCH = dict(
    ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=4, attn_resolutions=(16, ), resolution=256,
    z_channels=256, in_channels=3, dropout=0.0,
    quantizer=dict(type='IndexBackpropQuantizer', codebook_size=16384, embed_dim=256))

# Bundle keys tried in order when ``key`` is None; only entries holding IBQ weights are taken
# (a GEAR bundle's ``ema`` is the AR's EMA and is never picked).
BUNDLE_KEYS: Tuple[str, ...] = ('state_dict', 'model', 'vq', 'vq_ema', 'ema')
EMA_BUNDLE_KEYS: Tuple[str, ...] = ('vq_ema', 'ema', 'state_dict', 'model', 'vq')
MODEL_PREFIXES: Tuple[str, ...] = ('encoder.', 'decoder.', 'quant_conv.', 'post_quant_conv.')
# Modules that exist only in training (IBQ's ``loss`` holds the discriminator and LPIPS).
TRAINING_ONLY_PREFIXES: Tuple[str, ...] = (
    'loss.', 'discriminator.', 'disc.', 'perceptual_loss.', 'lpips.')
EMA_PREFIX = 'model_ema.'
EMA_BOOKKEEPING: Tuple[str, ...] = ('decay', 'num_updates')
RELEASED_QUANT, GEAR_QUANT = 'quantize.', 'quantizer.'
_ENCODER_BLOCK = re.compile(r'^encoder\.down\.\d+\.block\.')


def holds_ibq(state_dict: Any) -> bool:
    """Whether ``state_dict`` (released or gear names, wrapped or not) is an IBQ tokenizer's:
    taming's encoder levels (``encoder.down.{i}.block``) and a learnt codebook
    (``quantize.embedding.weight`` or ``quantizer.embedding.weight``). LlamaGen's VQ has
    ``encoder.conv_blocks``; Open-MAGVIT2's LFQ has no codebook weight."""
    if not isinstance(state_dict, dict):
        return False
    keys = strip_prefixes(state_dict).keys()
    has_codebook = (RELEASED_QUANT + 'embedding.weight' in keys
                    or GEAR_QUANT + 'embedding.weight' in keys)
    return has_codebook and any(_ENCODER_BLOCK.match(k) for k in keys)


def convert_ibq(checkpoint: Dict[str, Any], key: Optional[str] = None,
                prefer_ema: bool = False) -> Dict[str, Tensor]:
    """Released IBQ / GEAR-IBQ checkpoint -> state dict of gear's ``IBQTokenizer``.

    Args:
        checkpoint: raw state dict, Lightning checkpoint or GEAR bundle (module docstring).
        key: bundle key, e.g. ``'vq_ema'``; None picks the first of ``BUNDLE_KEYS``
            (``EMA_BUNDLE_KEYS`` when ``prefer_ema``) that holds IBQ weights, else
            ``checkpoint`` itself.
        prefer_ema: take the EMA weights where the checkpoint has them: the ``vq_ema`` entry
            of a GEAR bundle, the ``model_ema.*`` shadows of a Lightning state dict. A
            checkpoint without EMA weights gives its live weights.

    Raises:
        ValueError: naming the keys that are neither model weights nor known training-only
            entries, or the weights an incomplete set of EMA shadows lacks.
    """
    order = EMA_BUNDLE_KEYS if prefer_ema else BUNDLE_KEYS
    state_dict = strip_prefixes(select_entry(checkpoint, key, order, holds_ibq, 'IBQ tokenizer'))
    live = {k: v for k, v in state_dict.items() if not k.startswith(EMA_PREFIX)}
    shadows = {k[len(EMA_PREFIX):]: v for k, v in state_dict.items()
               if k.startswith(EMA_PREFIX) and k[len(EMA_PREFIX):] not in EMA_BOOKKEEPING}
    out = _rename_quantizer(live, RELEASED_QUANT, GEAR_QUANT, drop_training_only=True)
    if prefer_ema and shadows:
        out = _ema_weights(out, live, shadows)
    return out


def to_released_ibq(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """gear ``IBQTokenizer`` state dict -> released key names (the inverse of the above)."""
    return _rename_quantizer(state_dict, GEAR_QUANT, RELEASED_QUANT, drop_training_only=False)


def _rename_quantizer(state_dict: Dict[str, Tensor], src: str, dst: str,
                      drop_training_only: bool) -> Dict[str, Tensor]:
    """Strip wrapper prefixes, rename the quantizer prefix ``src`` -> ``dst``, keep the codec
    keys, optionally drop training-only entries; any other key is an error naming it."""
    out, unknown = {}, []
    for name, value in strip_prefixes(state_dict).items():
        if drop_training_only and name.startswith(TRAINING_ONLY_PREFIXES):
            continue
        if name.startswith(src):
            out[dst + name[len(src):]] = value
        elif name.startswith(MODEL_PREFIXES):
            out[name] = value
        else:
            unknown.append(name)
    if unknown:
        raise unknown_keys_error(unknown, 'IBQ')
    return out


def _ema_weights(converted: Dict[str, Tensor], live: Dict[str, Tensor],
                 shadows: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Replace every converted weight by its LitEma shadow (found by the live released name
    with the dots removed); shadows of training-only modules are dropped."""
    released = to_released_ibq(converted)  # gear name -> released name, one to one
    to_gear = dict(zip(released, converted))
    by_stripped: Dict[str, str] = {}
    for name in live:
        stripped = name.replace('.', '')
        if stripped in by_stripped:
            raise ValueError(f'{by_stripped[stripped]!r} and {name!r} share the EMA name {stripped!r}')
        by_stripped[stripped] = name
    out, unknown = dict(converted), []
    for stripped, value in shadows.items():
        name = by_stripped.get(stripped)
        if name is None:
            unknown.append(EMA_PREFIX + stripped)
        elif name in to_gear:
            out[to_gear[name]] = value
    if unknown:
        raise unknown_keys_error(unknown, 'IBQ')
    missing = sorted(n for n in released if n.replace('.', '') not in shadows)
    if missing:
        raise ValueError(f'the checkpoint has EMA shadows but none for {len(missing)} weights: '
                         f'{", ".join(missing[:10])}; pass prefer_ema=False for the live weights')
    return out


def infer_ibq_arch(state_dict: Dict[str, Tensor], resolution: int = 256) -> Dict[str, Any]:
    """``IBQTokenizer`` kwargs (with ``type``) read off the shapes of a gear or released state dict.

    Attention placement is not in the shapes' sizes, only in which levels hold
    ``encoder.down.{i}.attn``: level i is taken to work at ``resolution // 2**i``, i.e. the
    model is assumed to have been built for ``resolution``-pixel images (IBQ-16: 256, giving
    attention at 16). A different ``resolution`` gives the same weights and a different
    ``attn_resolutions``, which builds the same model.
    """
    state_dict = strip_prefixes(state_dict)
    quant = GEAR_QUANT if GEAR_QUANT + 'embedding.weight' in state_dict else RELEASED_QUANT
    ch = state_dict['encoder.conv_in.weight'].shape[0]
    levels = sorted({int(k.split('.')[2]) for k in state_dict if k.startswith('encoder.down.')})
    ch_mult = tuple(state_dict[f'encoder.down.{i}.block.0.conv1.weight'].shape[0] // ch
                    for i in levels)
    num_res_blocks = len({k.split('.')[4] for k in state_dict
                          if k.startswith('encoder.down.0.block.')})
    attn_resolutions = tuple(sorted(
        resolution // 2**i for i in levels
        if any(k.startswith(f'encoder.down.{i}.attn.') for k in state_dict)))
    codebook_size, embed_dim = state_dict[quant + 'embedding.weight'].shape
    return dict(type='IBQTokenizer', ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks,
                attn_resolutions=attn_resolutions, resolution=resolution,
                z_channels=state_dict['encoder.conv_out.weight'].shape[0],
                in_channels=state_dict['encoder.conv_in.weight'].shape[1], dropout=0.0,
                quantizer=dict(type='IndexBackpropQuantizer', codebook_size=codebook_size,
                               embed_dim=embed_dim))
