"""Precision control under mixed precision: run a loss (or a quantizer) in float32.

mmengine's ``AmpOptimWrapper(dtype='bfloat16')`` autocasts everything inside
``optim_wrapper.optim_context(...)``: in gear that is the whole body of each optimizer phase
(losses, discriminator, AR). Modules whose numbers need float32 take an ``fp32`` config flag and
run their forward inside ``fp32_region``: autocast off, floating inputs cast to float32.

    perceptual_loss=dict(type='LPIPS', fp32=True)      # trunk in float32 too (default: bf16
                                                       # trunk, float32 normalise + distance)
    gan_loss=dict(type='GANLoss', fp32=True)           # default: logits -> float32
    quantizer=dict(type='VectorQuantizer', fp32=True)  # default: distances in float32
"""
from contextlib import contextmanager, nullcontext
from typing import Iterator, Tuple

import torch
from torch import Tensor


@contextmanager
def fp32_region(*tensors: Tensor, enabled: bool = True) -> Iterator[Tuple[Tensor, ...]]:
    """``with fp32_region(a, b) as (a, b):`` autocast off and floating tensors in float32.

    With ``enabled=False`` the tensors come back unchanged and autocast stays as it is.
    """
    if not enabled:
        yield tensors
        return
    device = next((t.device.type for t in tensors if isinstance(t, Tensor)), 'cpu')
    ctx = torch.autocast(device_type=device, enabled=False) if device in ('cpu', 'cuda') \
        else nullcontext()
    with ctx:
        yield tuple(t.float() if isinstance(t, Tensor) and t.is_floating_point() else t
                    for t in tensors)
