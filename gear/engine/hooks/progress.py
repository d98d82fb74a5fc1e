"""A run's progress for whoever watches it from outside (``tools/pipeline.py``, a script, a
person): ``{work_dir}/progress.json``, rewritten atomically as training goes.

    {"iter": 120, "max_iters": 300, "start_iter": 100, "elapsed": 65.2, "sec_per_iter": 0.41,
     "eta": 73.8, "time": 1796287132.5, "done": false}

``iter`` counts the finished steps and ``start_iter`` is where this process started (the step of
the checkpoint a resumed run continues from); ``elapsed`` (s) and ``sec_per_iter`` cover this
process only. ``sec_per_iter`` is the wall time per step since the end of this process's first
step, so start-up and the validation at step 0 are left out and periodic validation and
checkpoints are spread over the steps; after one step it is that step's time. ``eta`` (s) =
(max_iters - iter) x sec_per_iter, as of ``time`` (Unix seconds); ``done`` once training has
ended and ``final.pth`` is exported.

Rank 0 writes at the start of training, after the first step, after any step ``interval``
seconds after the last write, and at the end. A failed write warns once; training goes on.
:func:`read_progress` reads the file back.
"""
import json
import logging
import os.path as osp
import time
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from gear.registry import HOOKS
from gear.utils.checkpoint import atomic_write_bytes

PROGRESS_FILE = 'progress.json'


def read_progress(work_dir: str) -> Optional[dict]:
    """The last ``progress.json`` written in ``work_dir``, or None if there is none (yet) or it
    cannot be read."""
    try:
        with open(osp.join(work_dir, PROGRESS_FILE)) as f:
            progress = json.load(f)
    except (OSError, ValueError):
        return None
    return progress if isinstance(progress, dict) and 'iter' in progress else None


@HOOKS.register_module()
class ProgressHook(Hook):
    """Write ``{work_dir}/progress.json`` (rank 0).

    Args:
        interval (float): At most one write per this many seconds between the first and the
            last step (0: after every step).
    """
    priority = 'LOWEST'  # after ExportWeightsHook at the end: done means final.pth is there

    def __init__(self, interval: float = 5.0):
        if interval < 0:
            raise ValueError(f'default_hooks.progress.interval must be >= 0, got {interval}')
        self.interval = interval
        self._warned = False

    def before_train(self, runner) -> None:
        self._started = time.monotonic()
        self._start_iter = runner.iter
        self._first_done = None  # (monotonic time, iter) at the end of this process's first step
        self._step_start = self._last_write = self._started
        self._write(runner, runner.iter, None)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self._first_done is None:
            self._step_start = time.monotonic()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        now, done = time.monotonic(), runner.iter + 1  # runner.iter counts up after this hook
        if self._first_done is None:
            self._first_done = (now, done)
            self._write(runner, done, now - self._step_start)
        elif now - self._last_write >= self.interval:
            self._write(runner, done, self._sec_per_iter(now, done))

    def after_train(self, runner) -> None:
        now = time.monotonic()
        self._write(runner, runner.iter, self._sec_per_iter(now, runner.iter), done=True)

    def _sec_per_iter(self, now: float, done: int) -> Optional[float]:
        if self._first_done is None:
            return None
        since, first = self._first_done
        if done > first:
            return (now - since) / (done - first)
        return since - self._step_start  # one step so far: its own time

    def _write(self, runner, step: int, sec_per_iter: Optional[float], done: bool = False):
        if not is_main_process():
            return
        now = time.monotonic()
        self._last_write = now
        max_iters = runner.max_iters
        eta = None if sec_per_iter is None else max(0, max_iters - step) * sec_per_iter
        progress = dict(iter=step, max_iters=max_iters, start_iter=self._start_iter,
                        elapsed=round(now - self._started, 3),
                        sec_per_iter=None if sec_per_iter is None else round(sec_per_iter, 6),
                        eta=None if eta is None else round(eta, 3), time=time.time(), done=done)
        path = osp.join(runner.work_dir, PROGRESS_FILE)
        try:
            atomic_write_bytes(json.dumps(progress).encode(), path)
        except OSError as e:
            if not self._warned:
                self._warned = True
                print_log(f'cannot write {path} ({e}); training goes on without it',
                          logger='current', level=logging.WARNING)
