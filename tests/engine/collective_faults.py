"""Faults for tests/engine/test_collective_errors.py: code that calls a collective on some ranks
only, the bug every shipped config had (the log flush in rank 0's ``before_save_checkpoint``).

- ``RankZeroCollectiveHook`` (a hook, via ``custom_imports``): at the first checkpoint, rank 0
  enters an all-reduce while the other ranks are busy for ``busy_s`` seconds.
- ``python -m torch.distributed.run ... tests/engine/collective_faults.py``: after gear's process
  group set-up and a DDP built as gear builds it, rank 0 all-reduces 3 numbers and rank 1 five.
"""
import os.path as osp
import sys
import time

import torch
import torch.distributed as dist
from mmengine.hooks import Hook

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from gear.registry import HOOKS  # noqa: E402


@HOOKS.register_module()
class RankZeroCollectiveHook(Hook):
    """Rank 0 all-reduces in ``before_save_checkpoint`` (rank 0 only); the others sleep after
    the checkpoint step (priority LOWEST: after the CheckpointHook)."""
    priority = 'LOWEST'

    def __init__(self, busy_s: float = 60.0):
        self.busy_s = busy_s
        self.done = False

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if not self.done and dist.get_rank() != 0:
            self.done = True
            time.sleep(self.busy_s)  # rank-only work: e.g. an evaluation on this rank alone

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        dist.all_reduce(torch.zeros(3))


def mismatch() -> None:
    from gear.utils.distributed import ddp_process_group, init_process_group
    init_process_group('gloo', timeout_s=60)
    torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2), process_group=ddp_process_group())
    dist.all_reduce(torch.zeros(3 if dist.get_rank() == 0 else 5))


if __name__ == '__main__':
    mismatch()
