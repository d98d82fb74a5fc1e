"""``GearCheckpointHook`` (``default_hooks.checkpoint``): mmengine's ``CheckpointHook`` with
checkpoints on time and on a signal, written in an order that a full disk cannot break.

At each step boundary a checkpoint is saved when
    the step is a multiple of ``interval``, or the last one (``save_last``)    (mmengine's rule)
    or ``time_interval`` minutes have passed since the last checkpoint       (rank 0's clock)
    or a SIGINT / SIGTERM is pending (``SignalHook``), which then ends the run
through one code path (mmengine's ``_save_checkpoint``: ``iter_N.pth``, ``keep_ckpt_ids``,
``last_checkpoint``). The ranks agree on the last two once per ``agree_interval`` steps with one
all-reduce of two CPU integers on a gloo group (gear/utils/rank_agreement.py), which never waits
for the GPU: a rank that saved or stopped while another started the next step would wait in that
step's collectives forever.

A save writes the new checkpoint first (atomically), then points ``last_checkpoint`` at it
(atomically), and only then removes the one that ``max_keep_ckpts`` drops (with its DeepSpeed
shards); mmengine removes first and writes the pointer in place. So when a write fails (a full
disk: ``FileWriteError``, naming the file), the previous checkpoint is complete, the pointer
names it, and nothing is left under the new name.
"""
import os.path as osp
import shutil
import signal
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from gear.registry import HOOKS
from gear.utils.checkpoint import atomic_write_bytes
from gear.utils.rank_agreement import all_ranks_max, cpu_barrier

from ..runner import ATOMIC_BACKEND, AtomicLocalBackend
from ..zero import engine_dir
from .signals import SignalHook


@HOOKS.register_module()
class GearCheckpointHook(CheckpointHook):
    """Save checkpoints every ``interval`` steps, every ``time_interval`` minutes and on a signal.

    Args:
        interval, by_epoch, save_optimizer, save_param_scheduler, out_dir, max_keep_ckpts,
        save_last, save_best, rule, greater_keys, less_keys, file_client_args, filename_tmpl,
        backend_args, published_keys, save_begin: mmengine's ``CheckpointHook``'s. With no
            ``backend_args`` and a local ``out_dir``, checkpoints and ``last_checkpoint`` are
            written atomically (``gear_atomic_local``).
        time_interval (float, optional): Also save when this many minutes have passed since the
            last checkpoint (by rank 0's clock), e.g. 30. None: steps only.
        agree_interval (int): Steps between the ranks' agreements on a time-based or a
            signal's checkpoint (a gloo all-reduce of two CPU integers; measured 0.6-0.7 ms
            between 2 processes on a busy 2-core CPU); a signal is acted on at the next one.
    """

    def __init__(self, interval: int = -1, by_epoch: bool = True, save_optimizer: bool = True,
                 save_param_scheduler: bool = True, out_dir: Optional[Union[str, Path]] = None,
                 max_keep_ckpts: int = -1, save_last: bool = True,
                 save_best: Union[str, List[str], None] = None,
                 rule: Union[str, List[str], None] = None,
                 greater_keys: Optional[Sequence[str]] = None,
                 less_keys: Optional[Sequence[str]] = None,
                 file_client_args: Optional[dict] = None, filename_tmpl: Optional[str] = None,
                 backend_args: Optional[dict] = None,
                 published_keys: Union[str, List[str], None] = None, save_begin: int = 0,
                 time_interval: Optional[float] = None, agree_interval: int = 1):
        error = self.config_error(time_interval=time_interval, agree_interval=agree_interval)
        if error:
            raise ValueError(f'default_hooks.checkpoint.{error}')
        super().__init__(interval=interval, by_epoch=by_epoch, save_optimizer=save_optimizer,
                         save_param_scheduler=save_param_scheduler, out_dir=out_dir,
                         max_keep_ckpts=max_keep_ckpts, save_last=save_last, save_best=save_best,
                         rule=rule, greater_keys=greater_keys, less_keys=less_keys,
                         file_client_args=file_client_args, filename_tmpl=filename_tmpl,
                         backend_args=backend_args, published_keys=published_keys,
                         save_begin=save_begin)
        self.time_interval = time_interval
        self.agree_interval = agree_interval
        self._signals: Optional[SignalHook] = None
        self._agreeing = False
        self._last_save = time.monotonic()

    @staticmethod
    def config_error(time_interval=None, agree_interval=1, **_) -> Optional[str]:
        """What is wrong with these arguments (``'key: value; ...'``), or None."""
        if time_interval is not None and (isinstance(time_interval, bool) or not isinstance(
                time_interval, (int, float)) or not time_interval > 0):
            return (f'time_interval: {time_interval!r}; give the minutes between checkpoints '
                    '(a positive number, e.g. 30) or None')
        if isinstance(agree_interval, bool) or not isinstance(agree_interval, int) \
                or agree_interval < 1:
            return (f"agree_interval: {agree_interval!r}; give the steps between the ranks' "
                    'agreements on a time-based or a signal\'s checkpoint (a positive integer)')
        return None

    def before_train(self, runner) -> None:
        target = str(self.out_dir if self.out_dir is not None else runner.work_dir)
        if self.backend_args is None and self.file_client_args is None and '://' not in target:
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        super().before_train(runner)
        self._signals = next((h for h in runner.hooks if isinstance(h, SignalHook)), None)
        if self._signals is not None:
            self._signals.install(runner.logger)  # already done by GearRunner.build_train_loop
        installed = self._signals is not None and self._signals.installed
        # the same decision on every rank: does any rank have handlers, or a clock to watch?
        self._agreeing = self.time_interval is not None or bool(all_ranks_max([installed])[0])
        self._last_save = time.monotonic()

    # ------------------------------------------------------------------ per step
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.by_epoch:
            return
        stop, timed = self._agree(runner)
        if self.every_n_train_iters(runner, self.interval, self.save_begin):
            why = f'every {self.interval} steps'
        elif self.save_last and self.is_last_train_iter(runner):
            why = 'the last step'
        elif timed:
            why = (f'time_interval={self.time_interval:g} min: '
                   f'{time.monotonic() - self._last_save:.2f} s since the last checkpoint')
        else:
            why = None
        if stop:
            received = f'{signal.Signals(stop).name} received'
            why = f'{why}; {received}' if why else received
        if why is not None:
            runner.logger.info(f'Saving checkpoint at {runner.iter + 1} iterations ({why})')
            self._save_checkpoint(runner)
        if stop:
            cpu_barrier()  # rank 0 has written it before any rank exits
            self._signals.stop(runner, stop, self.last_ckpt)

    def _agree(self, runner) -> Tuple[int, bool]:
        """(the signal to stop for or 0, whether rank 0's clock calls for a checkpoint), the
        same on every rank."""
        if not self._agreeing:
            return 0, False
        if (runner.iter + 1) % self.agree_interval and not self.is_last_train_iter(runner):
            return 0, False
        pending = self._signals.pending if self._signals is not None else 0
        due = (self.time_interval is not None and runner.rank == 0
               and time.monotonic() - self._last_save >= self.time_interval * 60)
        stop, due = all_ranks_max([pending, due])
        return stop, bool(due)

    # ------------------------------------------------------------------ saving
    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """mmengine's, reordered: write, point ``last_checkpoint`` at it, then rotate."""
        dropped = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                dropped = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(self.out_dir, filename, self.file_client_args,
                               save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta,
                               by_epoch=self.by_epoch, backend_args=self.backend_args)
        self._last_save = time.monotonic()
        if not is_main_process():
            return
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        if isinstance(self.file_backend, AtomicLocalBackend):
            self.file_backend.put_text(self.last_ckpt, pointer)
        else:  # a remote out_dir; the pointer stays in the local work dir, as mmengine's
            atomic_write_bytes(self.last_ckpt.encode(), pointer)
        if dropped is not None:
            old = self.filename_tmpl.format(dropped)
            self._remove(self.file_backend.join_path(self.out_dir, old))

    def _remove(self, path: str) -> None:
        """Remove a rotated-out checkpoint and its DeepSpeed shard folder."""
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # checkpoints saved by mmengine's DeepSpeed strategy
            self.file_backend.rmtree(path)
        if '://' not in path and osp.isdir(engine_dir(path)):
            shutil.rmtree(engine_dir(path), ignore_errors=True)
