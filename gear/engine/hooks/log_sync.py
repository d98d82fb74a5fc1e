"""Log the model's per-step scalars with one device->host sync per logging window.

A GEAR ``train_step`` returns ~20 scalar tensors; mmengine's ``RuntimeInfoHook`` calls
``update_scalar`` (``.item()``) on each of them every step, and ``OptimWrapper`` logs
``float(grad_norm)`` per group per step: ~25 host syncs per step that stall the GPU queue.

``LogSyncHook`` runs before ``RuntimeInfoHook`` (priority HIGHEST) and, every step:
    row   = outputs (+ each ``GearOptimWrapper``'s grad norm as ``grad_norm/{group}``)
    store torch.stack(row's tensors)      # (K,) on the device, no sync
    outputs.clear()                       # RuntimeInfoHook has nothing to sync
On the steps the ``LoggerHook`` logs (and before a checkpoint is saved, and after training):
    flat = torch.cat(stored rows)         # (sum of K over the window,)
    flat = all_reduce(flat, 'mean')       # ONE collective when distributed (mean over ranks)
    values = flat.tolist()                # ONE host sync
    message_hub.update_scalar('train/' + key, value) for every step and key, in step order
So the message hub holds the same per-step history as without the hook (averaged over ranks),
and ``LogProcessor`` (``window_size`` = the log interval) logs the window means as before.
Keys must be the same on every rank at every step (they are: they depend on the step only).
"""
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from gear.engine.optim_wrappers import DeferredGradNormMixin
from gear.registry import HOOKS

Row = Tuple[List[str], Dict[torch.device, Tensor], Dict[str, float]]


@HOOKS.register_module()
class LogSyncHook(Hook):
    """Defer the per-step log scalars to one stacked sync per logging window.

    Args:
        interval (int, optional): steps per window; None (default) = the LoggerHook's interval,
            so the values reach the message hub just before the LoggerHook reads them.
    """
    priority = 'HIGHEST'  # before RuntimeInfoHook (VERY_HIGH), which would .item() each value

    def __init__(self, interval: Optional[int] = None):
        if interval is not None and int(interval) < 1:
            raise ValueError(f'LogSyncHook: interval must be >= 1, got {interval}')
        self.interval = interval
        self._rows: List[Row] = []
        self._wrappers: List[DeferredGradNormMixin] = []
        self._logger: Optional[LoggerHook] = None

    # ------------------------------------------------------------------ set-up
    def before_train(self, runner) -> None:
        loggers = [h for h in runner.hooks if isinstance(h, LoggerHook)]
        self._logger = loggers[0] if loggers else None
        if self.interval is None:
            self.interval = self._logger.interval if self._logger else 50
        wrappers = runner.optim_wrapper
        named = (wrappers.items() if isinstance(wrappers, OptimWrapperDict)
                 else [('', wrappers)] if isinstance(wrappers, OptimWrapper) else [])
        syncing = []
        for name, wrapper in named:
            if isinstance(wrapper, DeferredGradNormMixin):
                wrapper.grad_norm_key = f'grad_norm/{name}' if name else 'grad_norm'
                self._wrappers.append(wrapper)
            elif getattr(wrapper, 'clip_grad_kwargs', None):
                syncing.append(f'{name or "optim_wrapper"} ({type(wrapper).__name__})')
        if syncing:
            print_log(f'LogSyncHook: {", ".join(syncing)} log float(grad_norm) every step (a '
                      f'host sync each); use type=\'GearOptimWrapper\' or '
                      f'\'GearAmpOptimWrapper\' to defer it', logger='current', level=30)

    # ------------------------------------------------------------------ per step
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._rows.append(self._collect(outputs))
        if outputs is not None:
            outputs.clear()  # nothing left for RuntimeInfoHook to .item()
        if self._logs_now(runner, batch_idx):
            self.flush(runner)

    def _logs_now(self, runner, batch_idx: int) -> bool:
        """Whether the LoggerHook logs after this step (its own condition)."""
        if self.every_n_inner_iters(batch_idx, self.interval):
            return True
        logger = self._logger
        return (logger is not None and self.end_of_epoch(runner.train_dataloader, batch_idx)
                and (not logger.ignore_last or len(runner.train_dataloader) <= logger.interval))

    def before_save_checkpoint_all_ranks(self, runner) -> None:
        """The saved message hub holds every finished step. A collective, so it runs on every
        rank (``GearRunner.save_checkpoint``), not in ``before_save_checkpoint`` (rank 0 only)."""
        self.flush(runner)

    def after_train(self, runner) -> None:
        self.flush(runner)

    def _collect(self, outputs: Optional[dict]) -> Row:
        """One step's values: tensors stacked per device (no sync), plain numbers kept."""
        items = dict(outputs or {})
        for wrapper in self._wrappers:
            norms = wrapper.pop_grad_norms()
            if norms:
                items[wrapper.grad_norm_key] = norms[-1]  # the last step of this iteration
        keys, by_device, numbers = [], defaultdict(list), {}
        for key, value in items.items():
            if isinstance(value, Tensor):
                if value.numel() != 1:
                    raise ValueError(f'LogSyncHook: output {key!r} has shape '
                                     f'{tuple(value.shape)}; log values must be scalars')
                by_device[value.device].append((key, value.detach().reshape(()).float()))
            elif isinstance(value, (int, float)):
                numbers[key] = float(value)
            else:
                raise TypeError(f'LogSyncHook: output {key!r} is a {type(value).__name__}; '
                                'log values must be scalar tensors or numbers')
        stacked = {}
        for device, pairs in by_device.items():
            keys.extend(k for k, _ in pairs)
            stacked[device] = torch.stack([v for _, v in pairs])  # (K_device,)
        return keys, stacked, numbers

    # ------------------------------------------------------------------ per window
    def flush(self, runner) -> None:
        """All-reduce and fetch the stored rows at once; replay them into the message hub."""
        rows, self._rows = self._rows, []
        if not rows:
            return
        fetched = {}
        devices = {d for _, stacked, _ in rows for d in stacked}
        for device in sorted(devices, key=lambda d: d.type):  # same collective order on ranks
            flat = torch.cat([stacked[device] for _, stacked, _ in rows if device in stacked])
            all_reduce(flat, op='mean')  # no-op unless distributed
            fetched[device] = iter(flat.tolist())  # the one host sync per device
        hub = runner.message_hub
        for keys, stacked, numbers in rows:
            values = [v for device in stacked for v in
                      (next(fetched[device]) for _ in range(stacked[device].numel()))]
            for key, value in zip(keys, values):
                hub.update_scalar(f'train/{key}', value)
            for key, value in numbers.items():
                hub.update_scalar(f'train/{key}', value)
