"""Ranks agreeing on a few integers at a step boundary, on the CPU, without waiting for the GPU.

A signal reaches the ranks of a run at slightly different times, and only rank 0's clock decides
a time-based checkpoint; a rank that saves (or stops) while another starts the next step waits
forever in that step's collectives. So at a step boundary every rank contributes its flags and
all take the element-wise maximum:

    flags = torch.tensor([signal number or 0, time is up (rank 0) or 0])   # (2,) int64, CPU
    all_reduce(flags, MAX) on a gloo group                                 # no CUDA stream sync

- ``cpu_group()``: the default group when it is gloo, else a gloo group made once per default
  group (its creation is itself a collective: every rank calls it the first time, in the same
  order), with the timeout of ``env_cfg.dist_cfg.timeout``.
- ``all_ranks_max(values)``: the element-wise maximum over ranks (the values as they are in one
  process).
- ``cpu_barrier()``: every rank waits for the others (e.g. for rank 0 to finish a write).
"""
from typing import List, Sequence

import torch
import torch.distributed as dist

from .distributed import is_distributed, new_gloo_group

_groups = {}  # id(default group) -> (default group, gloo group)


def cpu_group():
    """A gloo process group over every rank: the default one when it is gloo, else one made on
    first use (a collective call: every rank makes it, in the same order)."""
    world = dist.group.WORLD
    if dist.get_backend() == 'gloo':
        return world
    cached = _groups.get(id(world))
    if cached is None or cached[0] is not world:
        cached = _groups[id(world)] = (world, new_gloo_group())
    return cached[1]


def all_ranks_max(values: Sequence[int]) -> List[int]:
    """Element-wise maximum of ``values`` over ranks: one all-reduce of a CPU int64 tensor on
    :func:`cpu_group`; ``values`` unchanged in one process."""
    if not is_distributed():
        return [int(v) for v in values]
    flags = torch.tensor([int(v) for v in values], dtype=torch.int64)  # (n,) on the CPU
    dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=cpu_group())
    return flags.tolist()


def cpu_barrier() -> None:
    """Every rank waits here for the others (on :func:`cpu_group`); a no-op in one process."""
    if is_distributed():
        dist.barrier(group=cpu_group())
