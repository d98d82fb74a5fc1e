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

The non-finite watchdog (gear/engine/nonfinite.py, config key ``nonfinite``) reads the fetched
values there, step by step: the first non-finite loss term or ``grad_norm/{group}`` raises
``NonFiniteError``. Every rank holds the same all-reduced values, so all ranks stop together,
with no sync of their own. Under ``policy='skip'`` a skipped group's values at that step are
excused, ``nonfinite_skips/{group}`` (skips so far) is logged, and a group over its
``max_consecutive_skips`` flushes the window at once, so the run stops at that step.
"""
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from gear.engine.nonfinite import CONFIG_KEY, DEFAULT, NonFiniteError, check_row, parse_policy
from gear.engine.optim_wrappers import DeferredGradNormMixin
from gear.models.phases import LOG_INTERVAL_INFO
from gear.registry import HOOKS


@dataclass
class Row:
    """One step's values: tensors stacked per device (not fetched yet), plain numbers, and the
    watchdog's per-group skip outcomes."""
    step: int  # 1-based, as logged
    keys: List[str]
    stacked: Dict[torch.device, Tensor]  # (K_device,) each
    numbers: Dict[str, float]
    excused: set = field(default_factory=set)  # groups whose update was skipped
    refused: Dict[str, int] = field(default_factory=dict)  # group -> non-finite in a row


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
        self._wrappers: Dict[str, DeferredGradNormMixin] = {}
        self._logger: Optional[LoggerHook] = None
        self.policy = None  # the watchdog's (None: off); from the config key ``nonfinite``

    # ------------------------------------------------------------------ set-up
    def before_train(self, runner) -> None:
        loggers = [h for h in runner.hooks if isinstance(h, LoggerHook)]
        self._logger = loggers[0] if loggers else None
        if self.interval is None:
            self.interval = self._logger.interval if self._logger else 50
        # the models compute costly diagnostics on logged steps only (phases.logs_this_step)
        runner.message_hub.update_info(LOG_INTERVAL_INFO, self.interval)
        wrappers = runner.optim_wrapper
        named = (wrappers.items() if isinstance(wrappers, OptimWrapperDict)
                 else [('', wrappers)] if isinstance(wrappers, OptimWrapper) else [])
        syncing, unskippable = [], []
        for name, wrapper in named:
            if isinstance(wrapper, DeferredGradNormMixin):
                wrapper.grad_norm_key = f'grad_norm/{name}' if name else 'grad_norm'
                self._wrappers[name] = wrapper
            else:
                unskippable.append(f'{name or "optim_wrapper"} ({type(wrapper).__name__})')
                if getattr(wrapper, 'clip_grad_kwargs', None):
                    syncing.append(unskippable[-1])
        if syncing:
            print_log(f'LogSyncHook: {", ".join(syncing)} log float(grad_norm) every step (a '
                      f'host sync each); use type=\'GearOptimWrapper\' or '
                      f'\'GearAmpOptimWrapper\' to defer it', logger='current', level=30)
        cfg = getattr(runner, 'cfg', None) or {}
        self.set_policy(cfg.get(CONFIG_KEY, DEFAULT))
        if self.policy is not None and self.policy.skips and unskippable:
            raise ValueError(f"{CONFIG_KEY}.policy='skip': optimizer group(s) "
                             f'{", ".join(unskippable)} cannot skip an update; skipping needs '
                             "type='GearOptimWrapper' or 'GearAmpOptimWrapper' (use "
                             "policy='stop' otherwise)")

    def set_policy(self, value) -> None:
        """Switch the watchdog (a ``nonfinite`` setting: dict or None) for the next steps."""
        self.policy = parse_policy(value)
        for wrapper in self._wrappers.values():
            wrapper.nonfinite_policy = self.policy

    # ------------------------------------------------------------------ per step
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        row = self._collect(outputs, runner.iter + 1)
        self._rows.append(row)
        if outputs is not None:
            outputs.clear()  # nothing left for RuntimeInfoHook to .item()
        if self._logs_now(runner, batch_idx) or row.refused:  # refused: stop at this step
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

    def _collect(self, outputs: Optional[dict], step: int) -> Row:
        """One step's values: tensors stacked per device (no sync), plain numbers kept."""
        items = dict(outputs or {})
        excused, refused = set(), {}
        for name, wrapper in self._wrappers.items():
            norms = wrapper.pop_grad_norms()
            if norms:
                items[wrapper.grad_norm_key] = norms[-1]  # the last step of this iteration
            if self.policy is not None and self.policy.skips:
                outcomes = wrapper.pop_skip_outcomes()
                if 'refused' in outcomes:
                    refused[name] = wrapper.nonfinite_in_a_row
                elif outcomes:
                    excused.add(name)
                items[f'nonfinite_skips/{name}' if name else 'nonfinite_skips'] = \
                    wrapper.nonfinite_skips
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
        return Row(step, keys, stacked, numbers, excused, refused)

    # ------------------------------------------------------------------ per window
    def flush(self, runner) -> None:
        """All-reduce and fetch the stored rows at once; replay them into the message hub;
        then the watchdog checks them in step order (``NonFiniteError`` at the first bad one)."""
        rows, self._rows = self._rows, []
        if not rows:
            return
        fetched = {}
        devices = {d for row in rows for d in row.stacked}
        for device in sorted(devices, key=lambda d: d.type):  # same collective order on ranks
            flat = torch.cat([row.stacked[device] for row in rows if device in row.stacked])
            all_reduce(flat, op='mean')  # no-op unless distributed
            fetched[device] = iter(flat.tolist())  # the one host sync per device
        hub, replayed = runner.message_hub, []
        for row in rows:
            values = [v for device in row.stacked for v in
                      (next(fetched[device]) for _ in range(row.stacked[device].numel()))]
            pairs = list(zip(row.keys, values)) + list(row.numbers.items())
            for key, value in pairs:
                hub.update_scalar(f'train/{key}', value)
            replayed.append((row, pairs))
        if self.policy is None:
            return
        for row, pairs in replayed:  # the history is in the hub (and the debugging checkpoint)
            try:
                check_row(row.step, pairs, row.excused, row.refused, self.policy)
            except NonFiniteError as e:
                e.stop_step = rows[-1].step  # the state at the stop is after the window
                raise
