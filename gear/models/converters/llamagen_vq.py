"""Released LlamaGen / GEAR VQ checkpoints <-> gear's ``VQTokenizer`` state dict (pure functions).

Accepted inputs: a raw state dict (LlamaGen's ``vq_ds16_c2i.pt`` after ``['model']``), or a bundle
dict as released: LlamaGen's ``{'model': ..., 'optimizer': ..., ...}``, a GEAR stage-0/1
checkpoint ``{'vq', 'vq_ema', 'ar', 'ema', 'projectors', 'discriminator', ...}``, or a generic
``{'state_dict': ...}``. Only the key prefix of the quantizer differs
(``quantize.`` released, ``quantizer.`` in gear); wrapper prefixes and training-only entries
(discriminator, LPIPS, usage counters) are dropped; anything else unknown is an error.
"""
from typing import Any, Dict, Optional, Tuple

from torch import Tensor

from gear.utils.checkpoint import strip_prefixes

from .common import select_entry, unknown_keys_error

# VQ-16 as released by LlamaGen (``vq_ds16_c2i.pt``) and fine-tuned by GEAR: VQTokenizer kwargs.
VQ16_ARCH = dict(
    ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, z_channels=256, in_channels=3, dropout=0.0,
    quantizer=dict(type='VectorQuantizer', codebook_size=16384, embed_dim=8, l2_norm=True))
# VQ-8 (``vq_ds8_c2i.pt``): one downsampling fewer.
VQ8_ARCH = dict(VQ16_ARCH, ch_mult=(1, 2, 2, 4))

# Bundle keys tried in order when ``key`` is None. In a GEAR bundle ``ema`` is the AR's EMA and
# ``vq_ema`` the tokenizer's; in a LlamaGen bundle ``ema`` is the tokenizer's. Only entries that
# hold encoder weights are taken, so the AR's ``ema`` is never picked.
BUNDLE_KEYS: Tuple[str, ...] = ('model', 'state_dict', 'vq', 'vq_ema', 'ema')
EMA_BUNDLE_KEYS: Tuple[str, ...] = ('vq_ema', 'ema', 'model', 'state_dict', 'vq')
# Prefixes of modules that exist only in training and are dropped on conversion.
TRAINING_ONLY_PREFIXES: Tuple[str, ...] = (
    'discriminator.', 'disc.', 'loss.', 'vq_loss.', 'perceptual_loss.', 'lpips.')
TRAINING_ONLY_KEYS: Tuple[str, ...] = ('quantize.codebook_used', 'quantizer.codebook_used')
MODEL_PREFIXES: Tuple[str, ...] = ('encoder.', 'decoder.', 'quant_conv.', 'post_quant_conv.')
RELEASED_QUANT, GEAR_QUANT = 'quantize.', 'quantizer.'


def _holds_encoder(obj: Any) -> bool:
    return isinstance(obj, dict) and any(k.startswith('encoder.') for k in strip_prefixes(obj))


def select_state_dict(checkpoint: Dict[str, Any], key: Optional[str] = None,
                      prefer_ema: bool = False) -> Dict[str, Tensor]:
    """Pick the tokenizer's state dict out of ``checkpoint``: ``key`` if given, else the first
    of ``BUNDLE_KEYS`` (``EMA_BUNDLE_KEYS`` when ``prefer_ema``) that holds encoder weights,
    else ``checkpoint`` itself."""
    order = EMA_BUNDLE_KEYS if prefer_ema else BUNDLE_KEYS
    return select_entry(checkpoint, key, order, _holds_encoder, 'tokenizer')


def convert_llamagen_vq(checkpoint: Dict[str, Any], key: Optional[str] = None,
                        prefer_ema: bool = False) -> Dict[str, Tensor]:
    """Released LlamaGen / GEAR VQ checkpoint -> state dict of gear's ``VQTokenizer``.

    Args:
        checkpoint: raw state dict or bundle (see the module docstring).
        key: bundle key, e.g. ``'vq_ema'`` for the EMA weights of a GEAR checkpoint; None
            picks the first of ``BUNDLE_KEYS`` that holds encoder weights.
        prefer_ema: with ``key=None``, try the EMA entries (``vq_ema``, ``ema``) first.

    Raises:
        ValueError: naming the keys that are neither model weights nor known training-only entries.
    """
    state_dict = select_state_dict(checkpoint, key, prefer_ema)
    return _rename_quantizer(state_dict, RELEASED_QUANT, GEAR_QUANT, drop_training_only=True)


def to_llamagen_vq(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """gear ``VQTokenizer`` state dict -> LlamaGen key names (the inverse of the above)."""
    return _rename_quantizer(state_dict, GEAR_QUANT, RELEASED_QUANT, drop_training_only=False)


def _rename_quantizer(state_dict: Dict[str, Tensor], src: str, dst: str,
                      drop_training_only: bool) -> Dict[str, Tensor]:
    """Strip wrapper prefixes, rename the quantizer prefix ``src`` -> ``dst``, keep the codec
    keys, optionally drop training-only entries; any other key is an error naming it."""
    out, unknown = {}, []
    for name, value in strip_prefixes(state_dict).items():
        if drop_training_only and (name in TRAINING_ONLY_KEYS
                                   or name.startswith(TRAINING_ONLY_PREFIXES)):
            continue
        if name.startswith(src):
            out[dst + name[len(src):]] = value
        elif name.startswith(MODEL_PREFIXES):
            out[name] = value
        else:
            unknown.append(name)
    if unknown:
        raise unknown_keys_error(unknown, 'VQ')
    return out


def infer_arch(state_dict: Dict[str, Tensor], l2_norm: bool = True) -> Dict[str, Any]:
    """``VQTokenizer`` kwargs read off the shapes of a gear state dict.

    ``l2_norm`` (a forward-time choice, invisible in the weights) is True for every LlamaGen
    and GEAR release.
    """
    ch = state_dict['encoder.conv_in.weight'].shape[0]
    levels = sorted({int(k.split('.')[2]) for k in state_dict if k.startswith('encoder.conv_blocks.')})
    ch_mult = tuple(state_dict[f'encoder.conv_blocks.{i}.res.0.conv1.weight'].shape[0] // ch
                    for i in levels)
    num_res_blocks = len({k.split('.')[4] for k in state_dict
                          if k.startswith('encoder.conv_blocks.0.res.')})
    codebook_size, embed_dim = state_dict['quantizer.embedding.weight'].shape
    return dict(ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks,
                z_channels=state_dict['encoder.conv_out.weight'].shape[0],
                in_channels=state_dict['encoder.conv_in.weight'].shape[1], dropout=0.0,
                quantizer=dict(type='VectorQuantizer', codebook_size=codebook_size,
                               embed_dim=embed_dim, l2_norm=l2_norm))
