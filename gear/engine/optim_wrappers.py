"""gear's optimizer wrappers: gradient norms logged without a host sync, bf16 on any device.

mmengine's ``OptimWrapper._clip_grad`` writes ``float(grad_norm)`` to the message hub key
``train/grad_norm`` after every clipped step: one device->host sync per group per step, and all
groups share one key. Here the norm stays a device tensor; ``LogSyncHook`` names each wrapper's
key after its group (``grad_norm/tokenizer``, ``grad_norm/prior``, ...) and collects the norms
with the model's outputs, syncing once per logging window. Without the hook (a wrapper used on
its own) they behave exactly as mmengine's.

- ``GearOptimWrapper``: ``OptimWrapper`` + the deferred grad norm.
- ``GearAmpOptimWrapper``: bf16 autocast inside ``optim_context`` on any device (CPU too), no
  loss scaler (bf16 has float32's exponent range; mmengine's ``AmpOptimWrapper`` runs a
  ``GradScaler`` whose ``step`` syncs to check for infs, and refuses to build without a GPU).
  ``dtype='float16'`` needs loss scaling: use mmengine's ``AmpOptimWrapper`` for that.

    _group = dict(type='GearAmpOptimWrapper', dtype='bfloat16', optimizer=_adamw,
                  clip_grad=dict(max_norm=1.0))
"""
from contextlib import contextmanager
from typing import List, Optional

import torch
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from gear.registry import OPTIM_WRAPPERS


class DeferredGradNormMixin:
    """Keep clip_grad's norm on the device once ``grad_norm_key`` is set (by ``LogSyncHook``).

    Attributes:
        grad_norm_key (str or None): the log key, e.g. ``'grad_norm/prior'``; None: mmengine's
            behaviour (``float(norm)`` into ``train/grad_norm`` every step).
    """
    grad_norm_key: Optional[str] = None

    def pop_grad_norms(self) -> List[Tensor]:
        """The norms (0-dim device tensors) of the steps since the last call, oldest first."""
        norms, self._pending_grad_norms = getattr(self, '_pending_grad_norms', []), []
        return norms

    def _clip_grad(self) -> None:
        if self.grad_norm_key is None:
            return super()._clip_grad()
        params = [p for group in self.optimizer.param_groups for p in group['params']
                  if p.requires_grad and p.grad is not None]
        if params:
            norm = self.clip_func(params, **self.clip_grad_kwargs)
            if norm is not None:  # clip_grad_value_ returns None
                self._pending_grad_norms = getattr(self, '_pending_grad_norms', [])
                self._pending_grad_norms.append(norm.detach())


@OPTIM_WRAPPERS.register_module()
class GearOptimWrapper(DeferredGradNormMixin, OptimWrapper):
    """mmengine's ``OptimWrapper`` whose grad norm ``LogSyncHook`` logs without a host sync.

    Args: as ``mmengine.optim.OptimWrapper`` (optimizer, accumulative_counts, clip_grad).
    """


@OPTIM_WRAPPERS.register_module()
class GearAmpOptimWrapper(DeferredGradNormMixin, OptimWrapper):
    """Autocast in ``optim_context`` (bf16 by default) on the parameters' device; no loss scaler.

    Args:
        dtype (str): ``'bfloat16'`` (default) or ``'float32'`` (autocast off: the same code
            path in full precision).
        optimizer, accumulative_counts, clip_grad: as ``mmengine.optim.OptimWrapper``.
    """
    valid_dtypes = ('bfloat16', 'float32')

    def __init__(self, optimizer, dtype: str = 'bfloat16', **kwargs):
        if isinstance(dtype, torch.dtype):
            dtype = str(dtype).replace('torch.', '')
        if dtype not in self.valid_dtypes:
            raise ValueError(f'GearAmpOptimWrapper: dtype={dtype!r} is not one of '
                             f'{self.valid_dtypes}; float16 needs loss scaling: use '
                             f"type='AmpOptimWrapper', dtype='float16'")
        super().__init__(optimizer, **kwargs)
        self.cast_dtype = getattr(torch, dtype)

    def _device_type(self) -> str:
        for group in self.optimizer.param_groups:
            for p in group['params']:
                return p.device.type
        return 'cpu'

    @contextmanager
    def optim_context(self, model: nn.Module):
        enabled = self.cast_dtype != torch.float32
        with super().optim_context(model), torch.autocast(
                device_type=self._device_type(), dtype=self.cast_dtype, enabled=enabled):
            yield

    def load_state_dict(self, state_dict: dict) -> None:
        """Accepts mmengine ``AmpOptimWrapper`` states too (their ``loss_scaler`` is dropped)."""
        state_dict = dict(state_dict)
        state_dict.pop('loss_scaler', None)
        super().load_state_dict(state_dict)
