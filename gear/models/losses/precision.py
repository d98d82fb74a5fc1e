"""Precision control under mixed precision: float32 regions, and the convolutions' layout.

mmengine's ``AmpOptimWrapper(dtype='bfloat16')`` autocasts everything inside
``optim_wrapper.optim_context(...)``: in gear that is the whole body of each optimizer phase
(losses, discriminator, AR). Modules whose numbers need float32 take an ``fp32`` config flag and
run their forward inside ``fp32_region``: autocast off, floating inputs cast to float32.

    perceptual_loss=dict(type='LPIPS', fp32=True)      # trunk in float32 too (default: bf16
                                                       # trunk, float32 normalise + distance)
    gan_loss=dict(type='GANLoss', fp32=True)           # default: logits -> float32
    quantizer=dict(type='VectorQuantizer', fp32=True)  # default: distances in float32

Layout: ``autocast_channels_last(x)`` gives a convolutional network's input the channels-last
(NHWC) layout under a bfloat16 CPU autocast on a CPU where oneDNN has no bf16 kernels (it has
them from AVX-512 on: ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``); the VQ tokenizer,
PatchGAN and the perceptual nets call it on their inputs, and convolutions keep their input's
layout, so the whole network runs NHWC. Measured (tiny GEAR at issue 15's size,
docs/benchmarks.md): on a 2-core AVX2 CPU, where NCHW bf16 convolutions fall back to a slow path,
the tokenizer's bf16 forward + backward 68 s NCHW vs 43 s NHWC, LPIPS-VGG 3.9 vs 2.4 s, PatchGAN
1.5 vs 1.1 s; on a 2-core AVX-512 BF16 CPU the whole GEAR step is 10-13% faster NCHW. In float32
NCHW is as fast or faster (2.38 vs 2.58 s), so float32 keeps it, bit for bit.
``GEAR_CPU_BF16_LAYOUT=nhwc|nchw`` overrides the choice (default ``auto``). The layout changes no
value beyond the rounding of another summation order. On CUDA the layout is left as it comes
(not measured here).
"""
import os
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from typing import Iterator, Tuple

import torch
from torch import Tensor

LAYOUT_ENV = 'GEAR_CPU_BF16_LAYOUT'  # auto (default), nhwc or nchw


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


@lru_cache(maxsize=None)
def native_cpu_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions on this CPU (AVX-512 and newer; not AVX2)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_bf16_channels_last() -> bool:
    """Whether convolutions under a bf16 CPU autocast run channels-last: ``GEAR_CPU_BF16_LAYOUT``,
    or by default (``auto``) where the CPU lacks native bf16."""
    choice = os.environ.get(LAYOUT_ENV, 'auto')
    if choice not in ('auto', 'nhwc', 'nchw'):
        raise ValueError(f'{LAYOUT_ENV}={choice!r}: one of auto, nhwc, nchw')
    return choice == 'nhwc' or (choice == 'auto' and not native_cpu_bf16())


def autocast_channels_last(x: Tensor) -> Tensor:
    """``x`` (B, C, H, W) in channels-last layout under a CPU autocast where that is the faster
    layout (``cpu_bf16_channels_last``), else ``x`` itself."""
    if (x.dim() == 4 and x.device.type == 'cpu' and torch.is_autocast_enabled('cpu')
            and cpu_bf16_channels_last()):
        return x.contiguous(memory_format=torch.channels_last)  # (B, C, H, W), NHWC strides
    return x
