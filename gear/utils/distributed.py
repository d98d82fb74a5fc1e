"""Process-group helpers: the timeout every collective obeys, DDP's group under debug mode, and
an error that names the rank and the collective when one fails.

- ``init_process_group(backend, timeout_s)``: the process group with the timeout of
  ``env_cfg.dist_cfg.timeout`` (seconds); a collective that one rank never reaches fails on the
  others after that long instead of waiting forever.
- ``ddp_process_group()``: with ``TORCH_DISTRIBUTED_DEBUG=DETAIL`` on gloo, torch wraps every
  group in a checker that fingerprints each collective (so a mismatch fails loudly), but DDP's
  constructor crashes on such a group (a segmentation fault in ``c10d::Logger`` seen with torch
  2.14, gloo). DDP then gets a plain gloo group of its own; every other collective (log sync,
  entropy regulariser, batch-norm statistics, evaluation) stays on the checked default group.
- ``describe_collective_error(exc)``: "rank R/W: all_reduce failed in gear/...py:N (flush): ...".
- ``broadcast_coalesced(tensors)``: rank 0's values to every rank in one broadcast per bucket of
  one device and dtype (mmengine's runner sends every state-dict entry on its own: hundreds of
  collectives at start-up).
- ``gathered(module)``: ZeRO-3-partitioned parameters whole for a block (EMA updates, loading).
- ``process_group_from_environment(device)``: the group of a ``torchrun`` launch for a tool
  that is not the runner (``tools/sample.py``, ``tools/test.py``), and this rank's device.
"""
import contextlib
import datetime
import os
import traceback
from collections import defaultdict
from typing import Iterable, Optional

import torch
import torch.distributed as dist
from torch import nn

_TORCH_DIR = os.sep + os.path.join('torch', '')
_state = {'timeout_s': None, 'ddp_group': None}


def is_distributed() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """The number of ranks of the process group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def init_process_group(backend: str, timeout_s: Optional[float] = None) -> None:
    """``dist.init_process_group`` from the launcher's environment, with ``timeout_s`` seconds
    (None: torch's default) as the timeout of every collective."""
    set_timeout(timeout_s)
    kwargs = {} if timeout_s is None else dict(timeout=datetime.timedelta(seconds=timeout_s))
    dist.init_process_group(backend=backend, **kwargs)


def set_timeout(timeout_s: Optional[float]) -> None:
    """Record the configured timeout (seconds) for groups created later and for messages."""
    if timeout_s is not None and not float(timeout_s) > 0:
        raise ValueError(f'env_cfg.dist_cfg.timeout: must be a positive number of seconds, '
                         f'got {timeout_s!r}')
    _state['timeout_s'] = None if timeout_s is None else float(timeout_s)


def new_gloo_group():
    """A new gloo group over every rank, with the run's collective timeout (a collective call:
    every rank makes it, in the same order)."""
    timeout = _state['timeout_s']
    return dist.new_group(backend='gloo', timeout=None if timeout is None
                          else datetime.timedelta(seconds=timeout))


def ddp_process_group():
    """The group to give ``DistributedDataParallel``: None (the default group), or under
    ``TORCH_DISTRIBUTED_DEBUG=DETAIL`` with gloo a plain gloo group (made once, on every rank)."""
    if not is_distributed() or dist.get_backend() != 'gloo':
        return None
    if dist.get_debug_level() != dist.DebugLevel.DETAIL:
        return None
    if _state['ddp_group'] is None:
        level = dist.get_debug_level()
        dist.set_debug_level(dist.DebugLevel.INFO)  # new groups are wrapped only at DETAIL
        try:
            _state['ddp_group'] = new_gloo_group()
        finally:
            dist.set_debug_level(level)
    return _state['ddp_group']


def describe_collective_error(exc: BaseException) -> Optional[str]:
    """A one-line account of a failed collective (rank, operation, gear's calling line), or None
    if ``exc`` did not come from torch.distributed."""
    frames = traceback.extract_tb(exc.__traceback__)
    c10d = [f for f in frames if f.filename.endswith(os.path.join('distributed', 'distributed_c10d.py'))]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    markers = ('Timed out', 'timed out', 'gloo', 'NCCL', 'mismatch between collectives',
               'Connection reset by peer', 'Connection closed by peer')
    if not c10d and not any(m in str(exc) for m in markers):
        return None
    own = [f for f in frames if _TORCH_DIR not in f.filename and 'site-packages' not in f.filename]
    if c10d:
        op = c10d[-1].name
    elif any(f.name in ('backward', 'update_params') for f in frames):
        op = 'a gradient all-reduce in backward (DDP / DeepSpeed)'
    else:
        op = 'a collective'
    where = f' in {own[-1].filename}:{own[-1].lineno} ({own[-1].name})' if own else ''
    rank = (f'rank {dist.get_rank()}/{dist.get_world_size()}' if dist.is_available()
            and dist.is_initialized() else f'rank {os.environ.get("RANK", "?")}')
    timeout = _state['timeout_s']
    limit = f' (env_cfg.dist_cfg.timeout = {timeout:g} s)' if timeout else ''
    return (f'{rank}: {op} failed{where}: {text}. Every rank must run the same collectives in '
            f'the same order; a rank that does not reach this one makes the others fail after '
            f'the process-group timeout{limit}.')


def broadcast_coalesced(tensors: Iterable[torch.Tensor], src: int = 0,
                        bucket_numel: int = 2 ** 26) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values: one broadcast per bucket of at
    most ``bucket_numel`` elements of one device and dtype. A no-op in one process."""
    if not is_distributed():
        return
    from mmengine.dist import broadcast  # moves CPU tensors to the backend's device (nccl)
    groups = defaultdict(list)  # same order on every rank: the callers' order
    for t in tensors:
        if t.numel():
            groups[(t.device, t.dtype)].append(t)
    for group in groups.values():
        for bucket in _buckets(group, bucket_numel):
            flat = torch.cat([t.detach().reshape(-1) for t in bucket])  # (sum of numel,)
            broadcast(flat, src)
            with torch.no_grad():
                for t, part in zip(bucket, flat.split([t.numel() for t in bucket])):
                    t.copy_(part.view_as(t))


def _buckets(tensors, limit: int):
    bucket, size = [], 0
    for t in tensors:
        if bucket and size + t.numel() > limit:
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel()
    if bucket:
        yield bucket


def gathered(module: nn.Module, modifier_rank: Optional[int] = None):
    """Context in which ZeRO-3-partitioned parameters of ``module`` are whole (collective: every
    rank must enter it); a no-op for ordinary parameters. With ``modifier_rank``, that rank's
    in-place changes are kept (re-partitioned) on exit."""
    params = [p for p in module.parameters() if hasattr(p, 'ds_id')]
    if not params:
        return contextlib.nullcontext()
    import deepspeed
    return deepspeed.zero.GatheredParameters(params, modifier_rank=modifier_rank)


def close_process_group() -> None:
    """At the end of a run that made the process group: wait for every rank, then destroy the
    default group and every group made from it (``new_gloo_group``, ZeRO's), so their gloo
    threads stop now rather than in interpreter finalization (PyTorch asks for it; a rank torn
    down there can abort with ``terminate called without an active exception``). A no-op
    without a group."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    dist.destroy_process_group()
    _state['ddp_group'] = None


@contextlib.contextmanager
def process_group_from_environment(device: str, timeout_s: Optional[float] = None):
    """Under ``torchrun`` (``WORLD_SIZE`` > 1): a process group for the block, nccl with this
    rank on ``cuda:LOCAL_RANK`` when ``device`` is CUDA, else gloo; yields this rank's device
    and destroys the group at the end. Outside torchrun (or in an existing group): ``device``
    unchanged, nothing done."""
    if int(os.environ.get('WORLD_SIZE', '1')) <= 1 or dist.is_initialized():
        yield device
        return
    if torch.device(device).type == 'cuda':
        device = f'cuda:{int(os.environ.get("LOCAL_RANK", "0"))}'
        torch.cuda.set_device(device)
    init_process_group('nccl' if device.startswith('cuda') else 'gloo', timeout_s)
    try:
        yield device
    finally:
        dist.destroy_process_group()
