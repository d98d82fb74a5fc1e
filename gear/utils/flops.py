"""FLOP counts for benchmarks and model FLOPs utilisation (MFU).

Convention: one multiply-add = 2 FLOPs (fvcore counts 1: its numbers are doubled here); only
matrix products, convolutions and attention are counted (norms, activations, RoPE, softmax and
optimizer updates are left out, as in the usual MFU accounting).

Two independent counts:
- ``count_flops(fn)``: torch's ``FlopCounterMode`` around a real call, e.g. one whole
  ``train_step``: the forward AND backward FLOPs as executed (frozen modules get input
  gradients only; detached branches no backward). This is what the benchmark's MFU uses.
  Attention kernels the counter does not know on CPU are added (``SDPA_CPU``).
- ``llamagen_forward_flops(ar, ...)``: the analytic count of one LlamaGen GPT forward,
      per block  2 S (4 d^2 + 3 d h)      wqkv + wo, SwiGLU w1, w3, w2   (h: SwiGLU hidden)
               + 4 S^2 d                  QK^T and AV over the full S x S (causal masking not
                                          discounted, as PaLM's MFU convention)
      head       2 S d V                  on all S = cls_token_num + L positions
      soft input 2 L K d                  probs (B, L, K) @ E (K, d)
  times the batch; a training step of it costs 3x (forward + backward with weight gradients).
  ``fvcore_forward_flops`` checks it (tests/models/test_ar_backbone.py).
"""
from typing import Callable, Optional, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten


def _cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# CPU attention kernels torch's counter lacks (the CUDA flash / efficient / cudnn ones it has)
SDPA_CPU = {}
if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu'):
    SDPA_CPU[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa
    SDPA_CPU[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _cpu_sdpa_backward


def flop_counter() -> FlopCounterMode:
    """A ``FlopCounterMode`` (no printout) that also knows the CPU attention kernels."""
    return FlopCounterMode(display=False, custom_mapping=SDPA_CPU)


def count_flops(fn: Callable, *args, **kwargs) -> Tuple[int, object]:
    """Run ``fn(*args, **kwargs)`` counting its FLOPs (forward and any backward inside it).

    Returns:
        (total FLOPs, fn's return value).
    """
    with flop_counter() as counter:
        out = fn(*args, **kwargs)
    return counter.get_total_flops(), out


def llamagen_forward_flops(ar: nn.Module, batch: int, num_tokens: Optional[int] = None,
                           n_layers: Optional[int] = None, soft: bool = False,
                           head: bool = True) -> int:
    """Analytic FLOPs of one ``LlamaGenGPT`` forward on ``batch`` sequences.

    Args:
        ar: the backbone (reads dim, n_layer, vocab_size, cls_token_num and the SwiGLU width).
        batch: sequences B.
        num_tokens: image tokens fed L (default ``block_size - 1``: the training input
            ``tokens[:, :-1]``).
        n_layers: blocks run (default all; the soft branch's early exit runs ``align_depth``).
        soft: the input is (B, L, K) probabilities (adds ``probs @ E``).
        head: the final norm + vocabulary head run (False for early exit).
    """
    L = ar.block_size - 1 if num_tokens is None else num_tokens
    S = ar.cls_token_num + L  # positions in the sequence
    d, V = ar.dim, ar.vocab_size
    hidden = ar.layers[0].feed_forward.w1.out_features  # SwiGLU hidden h
    n_layers = ar.n_layer if n_layers is None else n_layers
    per_block = 2 * S * (4 * d * d + 3 * d * hidden) + 4 * S * S * d
    total = n_layers * per_block
    if head:
        total += 2 * S * d * V
    if soft:
        total += 2 * L * V * d
    return batch * total


def _fvcore_sdpa(inputs, outputs) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention``: multiply-adds of QK^T and AV."""
    from fvcore.nn.jit_handles import get_shape
    q, k, v = (get_shape(x) for x in inputs[:3])  # (B, H, S, D) each
    batch_heads = 1
    for n in q[:-2]:
        batch_heads *= n
    return batch_heads * q[-2] * k[-2] * q[-1] + batch_heads * q[-2] * k[-2] * v[-1]


def fvcore_forward_flops(module: nn.Module, inputs: tuple) -> int:
    """fvcore's count of one forward of ``module(*inputs)`` (which must return tensors), in
    FLOPs (fvcore's multiply-adds x 2), attention included."""
    from fvcore.nn import FlopCountAnalysis
    analysis = FlopCountAnalysis(module, inputs)
    analysis.set_op_handle('aten::scaled_dot_product_attention', _fvcore_sdpa)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return 2 * int(analysis.total())
