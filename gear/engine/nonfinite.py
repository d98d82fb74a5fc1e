"""The non-finite watchdog: the first NaN / inf loss term or gradient norm stops the run.

The config key (``configs/_base_/default_runtime.py``)::

    nonfinite = dict(policy='stop')                           # the default
    nonfinite = dict(policy='skip', max_consecutive_skips=3)  # opt in: skip bad updates
    nonfinite = None                                          # off (benchmarks)

Where each check runs, and what it costs:
- ``LogSyncHook`` already fetches every step's scalars once per log window (and before each
  checkpoint), all-reduced, so every rank holds the same numbers. :func:`check_row` reads those
  fetched values in step order: a key containing ``loss`` or a ``grad_norm/{group}`` that is not
  finite raises :class:`NonFiniteError`, on every rank at the same point. ``policy='stop'`` adds
  no host sync; without ``clip_grad`` the gear optimizer wrappers still compute each group's
  gradient norm on the device (foreach, no sync) so that a non-finite gradient is seen.
- ``policy='skip'``: deciding to skip needs the norm on the host: one sync per group per step
  (as torch's ``GradScaler`` does). A group whose norm is not finite does not step (gradients
  dropped; EMA and schedulers as usual) and its values at that step do not stop the run; after
  ``max_consecutive_skips`` skips of a group in a row the next non-finite update stops it.
- ``GearRunner.save_checkpoint`` refuses a non-finite model state (one sync per checkpoint),
  ``ExportWeightsHook`` a non-finite ``final.pth``; both check :func:`first_nonfinite_tensor`
  whatever the policy, so no checkpoint ``--resume`` picks and no export holds NaN.
When the run stops, ``GearRunner`` writes the state at the stop to ``nonfinite_iter_{N}.pth``
(a name ``--resume`` never picks) and completes the error with it and the last finite
checkpoint.
"""
import math
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Sequence, Set, Tuple

import torch
from mmengine.dist import all_reduce
from torch import Tensor

CONFIG_KEY = 'nonfinite'
POLICIES = ('stop', 'skip')
DEFAULT = dict(policy='stop')


@dataclass(frozen=True)
class WatchdogPolicy:
    """A parsed ``nonfinite`` setting."""
    policy: str = 'stop'
    max_consecutive_skips: int = 0

    @property
    def skips(self) -> bool:
        return self.policy == 'skip'


def parse_policy(value) -> Optional[WatchdogPolicy]:
    """The ``nonfinite`` setting as a policy (None: the watchdog is off).

    Raises:
        ValueError: naming the key at fault (``nonfinite``, ``nonfinite.policy``, ...).
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{CONFIG_KEY}: {value!r}; give dict(policy='stop'), "
                         f"dict(policy='skip', max_consecutive_skips=N) or None (off)")
    unknown = sorted(set(value) - {'policy', 'max_consecutive_skips'})
    if unknown:
        raise ValueError(f'{CONFIG_KEY}.{unknown[0]}: not a setting of the watchdog (it takes '
                         'policy, max_consecutive_skips)')
    policy = value.get('policy', 'stop')
    if policy not in POLICIES:
        raise ValueError(f'{CONFIG_KEY}.policy: {policy!r} is not one of {POLICIES}')
    skips = value.get('max_consecutive_skips')
    if policy == 'stop':
        if skips is not None:
            raise ValueError(f"{CONFIG_KEY}.max_consecutive_skips: only with policy='skip' "
                             "(policy='stop' stops at the first non-finite value)")
        return WatchdogPolicy('stop')
    if skips is None or isinstance(skips, bool) or not isinstance(skips, int) or skips < 1:
        raise ValueError(f'{CONFIG_KEY}.max_consecutive_skips: {skips!r}; policy=\'skip\' needs '
                         'the number of updates of a group that may be skipped in a row '
                         '(a positive integer)')
    return WatchdogPolicy('skip', skips)


def is_watched(key: str) -> bool:
    """Whether a logged key is checked: loss terms and gradient norms."""
    return 'loss' in key or key == 'grad_norm' or key.startswith('grad_norm/')


def group_of(key: str) -> Optional[str]:
    """The optimizer group of a logged key: its first path component (``tokenizer/loss`` ->
    ``tokenizer``), the second for ``grad_norm/{group}``; None when the key has none."""
    parts = key.split('/')
    if parts[0] == 'grad_norm':
        return parts[1] if len(parts) > 1 else None
    return parts[0] if len(parts) > 1 else None


def nonfinite_checkpoint_name(step: int) -> str:
    """The debugging checkpoint's name: not ``iter_N.pth``, so ``--resume`` never picks it."""
    return f'nonfinite_iter_{step}.pth'


def _describe(value: float) -> str:
    return 'nan' if math.isnan(value) else ('inf' if value > 0 else '-inf')


def _ordinal(n: int) -> str:
    suffix = 'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')
    return f'{n}{suffix}'


class NonFiniteError(FloatingPointError):
    """A loss term, a gradient norm or the model state is not finite; the run stops.

    Attributes:
        step (int): the first bad step (1-based, as logged and as in ``iter_N.pth``).
        group, key: the optimizer group and the logged key (a model-state error: no group, the
            first non-finite tensor as ``key`` and ``in_state`` True).
        stop_step (int): the steps done when the run stopped (>= ``step``).
        checkpoint (str): the debugging checkpoint of the state at the stop (set by the runner).
        last_finite (str): the checkpoint ``--resume`` continues from (set by the runner).
    """

    def __init__(self, message: str, step: int, group: Optional[str] = None,
                 key: Optional[str] = None, stop_step: Optional[int] = None,
                 in_state: bool = False):
        super().__init__(message)
        self.message, self.step, self.group, self.key = message, step, group, key
        self.in_state = in_state  # found in the model state, not in a logged value
        self.stop_step = step if stop_step is None else stop_step
        self.checkpoint: Optional[str] = None
        self.checkpoint_error: Optional[str] = None
        self.last_finite: Optional[str] = None
        self.resume_checked = False

    def __str__(self) -> str:
        text = self.message
        if self.checkpoint:
            since = '' if self.in_state else f', after the first bad step {self.step}'
            text += (f'. The state at the stop (step {self.stop_step}{since}) is in '
                     f'{self.checkpoint}, for debugging (--resume never picks it)')
        elif self.checkpoint_error:
            text += f'. The state at the stop could not be saved: {self.checkpoint_error}'
        if self.resume_checked:
            text += (f'. Last finite checkpoint: {self.last_finite} (--resume continues from it)'
                     if self.last_finite else '. No finite checkpoint was written before it')
        return text


def check_row(step: int, values: Sequence[Tuple[str, float]], excused: Set[str] = frozenset(),
              refused: Optional[Dict[str, int]] = None,
              policy: Optional[WatchdogPolicy] = None) -> None:
    """Raise :class:`NonFiniteError` for the first non-finite watched value of one step.

    Args:
        step: the step (1-based) the values were logged at.
        values: ``(key, value)`` in the order the model returned them (loss terms before the
            gradient norms, which the log hook appends).
        excused: groups whose update was skipped at this step (``policy='skip'``): their values
            do not stop the run.
        refused: group -> non-finite updates in a row, for groups over ``max_consecutive_skips``.
        policy: the policy, for the message.
    """
    bad = [(k, v) for k, v in values if is_watched(k) and not math.isfinite(v)
           and group_of(k) not in excused]
    if not bad:
        return
    key, value = bad[0]
    group = group_of(key)
    message = f'step {step}: {key} is {_describe(value)}'
    if group is not None:
        message += f' (optimizer group {group!r})'
    if len(bad) > 1:
        message += f'; also non-finite at step {step}: {", ".join(k for k, _ in bad[1:])}'
    if refused and group in refused and policy is not None:
        message += (f"; the {_ordinal(refused[group])} non-finite update of {group!r} in a row, "
                    f'after {policy.max_consecutive_skips} skipped '
                    f'({CONFIG_KEY}.max_consecutive_skips={policy.max_consecutive_skips})')
    raise NonFiniteError(message, step=step, group=group, key=key)


def first_nonfinite_tensor(named: Iterable[Tuple[str, Tensor]]) -> Optional[Tuple[str, str]]:
    """``(name, description)`` of the first floating-point tensor with a NaN or inf, else None.

    One device->host sync (the per-tensor flags are stacked and fetched at once). Under
    ``torch.distributed`` the flags are all-reduced (max) first, so every rank gets the same
    answer (a collective: call it on every rank, in the same order).
    """
    names, flags = [], []
    for name, tensor in named:
        if torch.is_tensor(tensor) and (tensor.is_floating_point() or tensor.is_complex()):
            names.append((name, tensor))
            flags.append(~torch.isfinite(tensor).all())
    if not flags:
        return None
    device = flags[0].device
    bad = torch.stack([f.to(device) for f in flags]).to(torch.float32)  # (T,) 1 = non-finite
    all_reduce(bad, op='max')  # no-op unless distributed
    found = [i for i, flag in enumerate(bad.tolist()) if flag]  # the one host sync
    if not found:
        return None
    name, tensor = names[found[0]]
    return name, _count(tensor, len(found) - 1)


def _count(tensor: Tensor, others: int) -> str:
    """What is wrong with one tensor (its own syncs: only on the error path)."""
    nan = int(torch.isnan(tensor).sum())
    inf = int(torch.isinf(tensor).sum())
    text = f'{nan} nan and {inf} inf of {tensor.numel()} values'
    if nan + inf == 0:  # non-finite on another rank only
        text = 'non-finite on another rank'
    if others:
        text += f'; {others} more tensor(s) non-finite'
    return text


def state_error(what: str, step: int, found: Tuple[str, str]) -> NonFiniteError:
    """The error for a non-finite model state found when writing ``what``."""
    name, description = found
    return NonFiniteError(f'step {step}: {what} not written: the model state is not finite: '
                          f'{name} has {description}', step=step, key=name, in_state=True)

