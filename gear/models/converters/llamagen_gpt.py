"""Released LlamaGen / GEAR class-conditional GPTs <-> gear's ``LlamaGenGPT`` (pure functions).

gear's module names equal LlamaGen's, so the conversion is prefix handling and checking.
Accepted inputs: a raw state dict, LlamaGen's ``{'model': sd, ...}`` bundles (or ``module`` from
DeepSpeed, ``state_dict``), and a GEAR stage-1 bundle, whose ``ar`` holds the AR weights and
``ema`` their EMA (``vq`` / ``vq_ema`` there are the tokenizer's and are never picked).
Wrapper prefixes (``module.``, ``_orig_mod.``) are stripped; ``freqs_cis`` (gear recomputes
it) and KV-cache buffers are dropped; any other unknown key is an error that names it.
"""
from typing import Any, Dict, Optional, Tuple

from torch import Tensor

from gear.utils.checkpoint import strip_prefixes

from .common import select_entry, unknown_keys_error

# the LlamaGen c2i GPT releases at 256 px (c2i_B_256.pt, c2i_L_256.pt, c2i_X_256.pt):
# LlamaGenGPT kwargs, used with VQ-16 (16384 codes, a 16 x 16 grid)
_C2I_256 = dict(vocab_size=16384, block_size=256, num_classes=1000, cls_token_num=1)
GPT_ARCHS = {
    'B': dict(dim=768, n_layer=12, n_head=12, **_C2I_256),
    'L': dict(dim=1024, n_layer=24, n_head=16, **_C2I_256),
    'XL': dict(dim=1280, n_layer=36, n_head=20, **_C2I_256),
}

BUNDLE_KEYS: Tuple[str, ...] = ('model', 'module', 'state_dict', 'ar', 'ema')
EMA_BUNDLE_KEYS: Tuple[str, ...] = ('ema', 'model', 'module', 'state_dict', 'ar')
# dropped on conversion: recomputed (RoPE table) or inference-only (KV cache, causal mask)
DROPPED_KEYS: Tuple[str, ...] = ('freqs_cis', 'causal_mask')
DROPPED_INFIXES: Tuple[str, ...] = ('.kv_cache.',)
TOP_LEVEL_KEYS: Tuple[str, ...] = (
    'cls_embedding.embedding_table.weight', 'tok_embeddings.weight', 'norm.weight', 'output.weight')
LAYER_SUFFIXES: Tuple[str, ...] = (
    'attention.wqkv.weight', 'attention.wo.weight', 'feed_forward.w1.weight',
    'feed_forward.w2.weight', 'feed_forward.w3.weight', 'attention_norm.weight', 'ffn_norm.weight')
# LlamaGen ModelArgs names -> LlamaGenGPT kwargs (None: not a constructor argument)
LLAMAGEN_ARG_NAMES = {'multiple_of': 'ffn_multiple_of', 'rope': None, 'model_type': None,
                      'max_batch_size': None, 'max_seq_len': None, 'caption_dim': None}


def _is_gpt_key(name: str) -> bool:
    if name in TOP_LEVEL_KEYS:
        return True
    parts = name.split('.', 2)  # ['layers', 'N', suffix]
    return (len(parts) == 3 and parts[0] == 'layers' and parts[1].isdigit()
            and parts[2] in LAYER_SUFFIXES)


def _holds_gpt(obj: Any) -> bool:
    return isinstance(obj, dict) and 'tok_embeddings.weight' in strip_prefixes(obj)


def select_state_dict(checkpoint: Dict[str, Any], key: Optional[str] = None,
                      prefer_ema: bool = False) -> Dict[str, Tensor]:
    """Pick the GPT's state dict out of ``checkpoint``: ``key`` if given, else the first of
    ``BUNDLE_KEYS`` (``EMA_BUNDLE_KEYS`` when ``prefer_ema``) that holds
    ``tok_embeddings.weight``, else ``checkpoint`` itself."""
    order = EMA_BUNDLE_KEYS if prefer_ema else BUNDLE_KEYS
    return select_entry(checkpoint, key, order, _holds_gpt, 'GPT')


def convert_llamagen_gpt(checkpoint: Dict[str, Any], key: Optional[str] = None,
                         prefer_ema: bool = False) -> Dict[str, Tensor]:
    """Released LlamaGen / GEAR GPT checkpoint -> state dict of gear's ``LlamaGenGPT``.

    Args:
        checkpoint: raw state dict or bundle (see the module docstring).
        key: bundle key, e.g. ``'ema'`` for the AR's EMA in a GEAR stage-1 checkpoint.
        prefer_ema: with ``key=None``, try ``ema`` first.

    Raises:
        ValueError: naming the keys that are neither GPT weights nor known dropped entries.
    """
    out, unknown = {}, []
    for name, value in strip_prefixes(select_state_dict(checkpoint, key, prefer_ema)).items():
        if name in DROPPED_KEYS or any(s in name for s in DROPPED_INFIXES):
            continue
        if _is_gpt_key(name):
            out[name] = value
        else:
            unknown.append(name)
    if unknown:
        raise unknown_keys_error(unknown, 'GPT')
    return out


def to_llamagen_gpt(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """gear ``LlamaGenGPT`` state dict -> LlamaGen key names (the inverse of the above)."""
    state_dict = strip_prefixes(state_dict)
    unknown = [k for k in state_dict if not _is_gpt_key(k)]
    if unknown:
        raise unknown_keys_error(unknown, 'GPT')
    return dict(state_dict)


def gpt_arch_from_llamagen(args: Dict[str, Any]) -> Dict[str, Any]:
    """LlamaGen ``ModelArgs`` kwargs (as ``ar_small.pt['arch']``) -> ``LlamaGenGPT`` kwargs."""
    if args.get('rope', '2d') != '2d':
        raise ValueError(f"gear's LlamaGenGPT implements 2D RoPE only, got rope={args['rope']!r}")
    if args.get('model_type', 'c2i') != 'c2i':
        raise ValueError(f"only class-conditional (c2i) GPTs are supported, "
                         f"got {args['model_type']!r}")
    out = {}
    for name, value in args.items():
        new = LLAMAGEN_ARG_NAMES.get(name, name)
        if new is not None:
            out[new] = value
    return out


def infer_arch(state_dict: Dict[str, Tensor], n_head: Optional[int] = None,
               block_size: int = 256) -> Dict[str, Any]:
    """``LlamaGenGPT`` kwargs read off a gear state dict's shapes.

    The head count and the grid are not visible in the weights: ``n_head`` defaults to the
    ``GPT_SIZES`` entry with the same (n_layer, dim), ``block_size`` to 256 (the 256 px
    releases; 576 for the 384 px ones).
    """
    from gear.models.ar.llamagen_gpt import GPT_SIZES
    vocab_size, dim = state_dict['tok_embeddings.weight'].shape
    n_layer = len({k.split('.')[1] for k in state_dict if k.startswith('layers.')})
    if n_head is None:
        match = [s for s in GPT_SIZES.values() if (s['n_layer'], s['dim']) == (n_layer, dim)]
        if not match:
            raise ValueError(f'no GPT size has n_layer={n_layer}, dim={dim}: pass n_head')
        n_head = match[0]['n_head']
    return dict(dim=int(dim), n_layer=n_layer, n_head=n_head, vocab_size=int(vocab_size),
                block_size=block_size,
                num_classes=state_dict['cls_embedding.embedding_table.weight'].shape[0] - 1,
                cls_token_num=1)
