"""gear's optimizer wrappers: gradient norms logged without a host sync, bf16 on any device.

mmengine's ``OptimWrapper._clip_grad`` writes ``float(grad_norm)`` to the message hub key
``train/grad_norm`` after every clipped step: one device->host sync per group per step, and all
groups share one key. Here the norm stays a device tensor; ``LogSyncHook`` names each wrapper's
key after its group (``grad_norm/tokenizer``, ``grad_norm/prior``, ...) and collects the norms
with the model's outputs, syncing once per logging window. Without the hook (a wrapper used on
its own) they behave exactly as mmengine's.

The non-finite watchdog (gear/engine/nonfinite.py) sets ``nonfinite_policy``: then the norm is
computed even without ``clip_grad`` (foreach, on the device, no sync), and under
``policy='skip'`` a group whose norm is not finite does not step (one host sync per group per
step, as torch's ``GradScaler``): its gradients are dropped by ``update_params``' ``zero_grad``
and the persistent floating-point buffers of the module it steps (BatchNorm running statistics,
updated by the step's forward) are put back as they were when the step's first
``optim_context`` was entered (a device copy per step, ``policy='skip'`` only).

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

from .nonfinite import WatchdogPolicy


class DeferredGradNormMixin:
    """Keep clip_grad's norm on the device once ``grad_norm_key`` is set (by ``LogSyncHook``).

    Attributes:
        grad_norm_key (str or None): the log key, e.g. ``'grad_norm/prior'``; None: mmengine's
            behaviour (``float(norm)`` into ``train/grad_norm`` every step).
        nonfinite_policy (WatchdogPolicy or None): set by ``LogSyncHook`` when the watchdog is
            on: the norm is then computed without ``clip_grad`` too, and ``policy='skip'``
            skips a step whose norm is not finite.
        nonfinite_skips (int): steps skipped so far; ``nonfinite_in_a_row``: non-finite
            steps since the last step taken.
    """
    grad_norm_key: Optional[str] = None
    nonfinite_policy: Optional[WatchdogPolicy] = None
    nonfinite_skips: int = 0
    nonfinite_in_a_row: int = 0

    def pop_grad_norms(self) -> List[Tensor]:
        """The norms (0-dim device tensors) of the steps since the last call, oldest first."""
        norms, self._pending_grad_norms = getattr(self, '_pending_grad_norms', []), []
        return norms

    def pop_skip_outcomes(self) -> List[str]:
        """``policy='skip'``: per non-finite step since the last call, ``'skipped'`` (within
        ``max_consecutive_skips``) or ``'refused'`` (over it: not taken either, the run stops)."""
        outcomes, self._skip_outcomes = getattr(self, '_skip_outcomes', []), []
        return outcomes

    @contextmanager
    def optim_context(self, model: nn.Module):
        """``policy='skip'``: the first context of a step keeps the module's buffers."""
        if (self.nonfinite_policy is not None and self.nonfinite_policy.skips
                and getattr(self, '_buffers_before', None) is None):
            self._buffers_before = [(b, b.detach().clone()) for b in persistent_buffers(model)]
        with super().optim_context(model):
            yield

    def _params_with_grad(self) -> List[Tensor]:
        return [p for group in self.optimizer.param_groups for p in group['params']
                if p.requires_grad and p.grad is not None]

    def _push_grad_norm(self, norm: Tensor) -> None:
        self._pending_grad_norms = getattr(self, '_pending_grad_norms', [])
        self._pending_grad_norms.append(norm.detach())

    def _clip_grad(self) -> None:
        if self.grad_norm_key is None:
            return super()._clip_grad()
        params = self._params_with_grad()
        if params:
            norm = self.clip_func(params, **self.clip_grad_kwargs)
            if norm is None and self.nonfinite_policy is not None:  # clip_grad_value_
                norm = total_grad_norm(params)
            if norm is not None:
                self._push_grad_norm(norm)

    def step(self, **kwargs) -> None:
        """Clip (or, for the watchdog, measure) the gradients, then step, unless
        ``policy='skip'`` finds the norm non-finite."""
        if self.grad_norm_key is None or self.nonfinite_policy is None:
            return super().step(**kwargs)
        before = len(getattr(self, '_pending_grad_norms', []))
        if self.clip_grad_kwargs:
            self._clip_grad()
        else:
            params = self._params_with_grad()
            if params:
                self._push_grad_norm(total_grad_norm(params))
        norms = getattr(self, '_pending_grad_norms', [])
        buffers_before, self._buffers_before = getattr(self, '_buffers_before', None), None
        if self.nonfinite_policy.skips and len(norms) > before:
            if not bool(torch.isfinite(norms[-1])):  # the one host sync of policy='skip'
                self.nonfinite_in_a_row += 1
                within = self.nonfinite_in_a_row <= self.nonfinite_policy.max_consecutive_skips
                self.nonfinite_skips += int(within)
                self._skip_outcomes = getattr(self, '_skip_outcomes', [])
                self._skip_outcomes.append('skipped' if within else 'refused')
                with torch.no_grad():
                    for buffer, kept in buffers_before or ():
                        buffer.copy_(kept)
                return  # no optimizer step (refused: the run stops); update_params drops the grads
            self.nonfinite_in_a_row = 0
        self.optimizer.step(**kwargs)


def persistent_buffers(module: nn.Module) -> List[Tensor]:
    """The floating-point buffers a state dict saves (running statistics; not constants
    registered with ``persistent=False``)."""
    return [b for m in module.modules() for name, b in m._buffers.items()
            if b is not None and b.is_floating_point()
            and name not in m._non_persistent_buffers_set]


def total_grad_norm(params: List[Tensor]) -> Tensor:
    """The 2-norm of all the gradients, on their device (foreach kernels, no host sync)."""
    return torch.nn.utils.get_total_norm([p.grad for p in params], 2.0, foreach=None)


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
