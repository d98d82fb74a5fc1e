"""``FusedAdamW``: torch's AdamW with the fused kernel where the parameters allow it.

``torch.optim.AdamW(fused=True)`` raises when a parameter sits on a device (or has a dtype) the
fused kernel does not support, e.g. CPU before torch 2.4. ``FusedAdamW`` asks for the fused
kernel and, where it is not available, says why in the log and falls back to the multi-tensor
(``foreach``) implementation, so one config runs on a GPU node and on a laptop::

    _adamw = dict(type='FusedAdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)

The update is AdamW's either way (the kernels agree to float rounding).
"""
from typing import Iterable, Optional

import torch
from mmengine.logging import print_log

from gear.registry import OPTIMIZERS


def fused_unsupported_reason(params: Iterable[torch.Tensor]) -> Optional[str]:
    """None when torch's fused AdamW supports every parameter, else why not (names the first
    parameter at fault by position, device and dtype)."""
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
        devices = set(_get_fused_kernels_supported_devices())
    except ImportError:  # torch < 2.1
        devices = {'cuda'}
    for i, p in enumerate(params):
        if p.device.type not in devices:
            return (f'parameter {i} is on {p.device.type!r}; torch {torch.__version__} fuses '
                    f'AdamW only on {sorted(devices)}')
        if not torch.is_floating_point(p):
            return f'parameter {i} has dtype {p.dtype}, not floating point'
    return None


@OPTIMIZERS.register_module()
class FusedAdamW(torch.optim.AdamW):
    """AdamW with ``fused=True`` where supported, else ``foreach=True`` (logged once, with why).

    Args: as ``torch.optim.AdamW`` (lr, betas, eps, weight_decay, amsgrad, ...), without
    ``fused`` / ``foreach``, which this class chooses.
    """

    def __init__(self, params, **kwargs):
        for key in ('fused', 'foreach'):
            if key in kwargs:
                raise TypeError(f'FusedAdamW chooses {key!r} itself; use type=\'AdamW\' to set it')
        params, flat = list(params), []
        for i, item in enumerate(params):
            if isinstance(item, dict):  # a param group: materialise its params once
                group = item['params']
                group = [group] if isinstance(group, torch.Tensor) else list(group)
                params[i] = dict(item, params=group)
                flat.extend(group)
            else:
                flat.append(item)
        reason = fused_unsupported_reason(flat)
        if reason is None:
            kwargs['fused'] = True
        else:
            kwargs['foreach'] = True
            print_log(f'FusedAdamW: fused kernel unavailable ({reason}); using foreach AdamW',
                      logger='current', level=30)
        super().__init__(params, **kwargs)
        self.fused_kernel = reason is None
