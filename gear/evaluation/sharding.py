"""Evaluation work split over the ranks of a process group and gathered back in order, so that
every rank ends with what one process computes.

Work comes as a sequence of items (sampling batch indices, batches of real or generated images);
rank r of W computes items r, r + W, r + 2W, ... After each round of W items every rank receives
the round's results, so results come out in the one-process order, on every rank:

    shard = Shard.current()                                 # the process group, or (0, 1)
    for feats in map_in_order(inception, image_batches, shard):  # (B, D), batch 0, 1, ..
        ...

Since an item is computed the same way whichever rank computes it (sampling batch i draws from a
generator seeded ``seed + i``; a batch of images has the same composition), the gathered results
equal one process's. Every rank must walk the same items (the same count, in the same order);
results travel as pickled CPU objects over gloo (a gloo group beside an NCCL default group).
"""
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Optional

import torch
import torch.distributed as dist

from gear.utils.distributed import is_distributed, new_gloo_group

_cpu_groups = {}  # default group -> gloo group for objects (NCCL's default group is GPU-only)


@dataclass(frozen=True)
class Shard:
    """This process's place among the ranks that share the work.

    Args:
        rank: computes items ``rank, rank + world_size, ...``.
        world_size: number of ranks sharing the work (1: all items here, no collective).
    """
    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls, distributed: Optional[bool] = None) -> 'Shard':
        """The process group's rank and size when ``distributed`` (None: whenever a group of
        more than one rank is initialised; False: one process, whatever the group)."""
        if distributed is None:
            distributed = is_distributed()
        if not distributed:
            return cls()
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError('distributed=True needs an initialised process group')
        return cls(dist.get_rank(), dist.get_world_size())

    @property
    def is_main(self) -> bool:
        """Rank 0: the rank that writes files and shows progress."""
        return self.rank == 0


def _cpu_group():
    """None (the default group) on gloo, else a gloo group over every rank (made once)."""
    if dist.get_backend() == 'gloo':
        return None
    world = dist.group.WORLD
    if world not in _cpu_groups:
        _cpu_groups[world] = new_gloo_group()
    return _cpu_groups[world]


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_cpu(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    return obj


def map_in_order(fn: Callable[[Any], Any], items: Iterable, shard: Shard = Shard()
                 ) -> Iterator:
    """``fn(item)`` of every item, in order, on every rank; rank r computes items r, r + W, ..

    ``items`` is read lazily, one round of W items at a time (only this rank's ``fn`` runs),
    so a generator works; every rank must see the same number of items. With one rank this is
    ``map(fn, items)``. Results are moved to the CPU before they travel.
    """
    w = shard.world_size
    if w == 1:
        yield from map(fn, items)
        return
    group, items = _cpu_group(), iter(items)
    while True:
        round_ = list(islice(items, w))  # the same round on every rank
        if not round_:
            return
        mine = _to_cpu(fn(round_[shard.rank])) if shard.rank < len(round_) else None
        parts = [None] * w
        dist.all_gather_object(parts, mine, group=group)
        yield from parts[:len(round_)]  # rank j's result is item j of the round
        if len(round_) < w:
            return


def all_agree(flag: bool, shard: Shard = Shard()) -> bool:
    """True when ``flag`` is True on every rank (a collective when shared)."""
    if shard.world_size == 1:
        return bool(flag)
    t = torch.tensor([int(bool(flag))])
    dist.all_reduce(t, op=dist.ReduceOp.MIN, group=_cpu_group())
    return bool(t.item())


def barrier(shard: Shard = Shard()) -> None:
    """Wait for every rank (a no-op in one process), e.g. until rank 0 has written a file."""
    if shard.world_size > 1:
        dist.barrier(group=_cpu_group())
