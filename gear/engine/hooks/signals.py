"""SIGINT (Ctrl-C) and SIGTERM outside SLURM: a checkpoint at the next step boundary, then exit.

    signal -> handler: pending = signum (nothing else runs inside the handler)
    each step boundary (GearCheckpointHook.after_train_iter, every rank):
        stop = max over ranks of pending          # gear/utils/rank_agreement.py, gloo, CPU
        stop -> save iter_N.pth as any checkpoint (last_checkpoint, max_keep_ckpts), then
                raise TrainingInterrupted: exit 128 + signum (130 SIGINT, 143 SIGTERM), and
                gear.train prints the command that resumes the run
    a second Ctrl-C -> KeyboardInterrupt at once (gear.train: exit 130, nothing saved)

The handlers are installed before the train loop starts its dataloader workers (forked, they
inherit them and ignore a Ctrl-C meant for the main process) and restored when the run ends
(``after_run``, after ``final.pth``: a signal during the export at the end changes nothing);
after a stop they stay, ignoring every signal, until the process exits (under torchrun through
``os._exit`` once the logs are flushed: gear.train).
Not installed:
- inside a SLURM job submitted by ``slurm/launch.py``: submitit has bound SIGTERM (logged and
  ignored) and USR2 (checkpoint and requeue, gear/pipeline/slurm_trainer.py) to its own
  ``SignalHandler``; those stay as they are;
- outside the main thread (Python installs signal handlers from the main thread only): a
  signal then ends the run as it would without this hook, which says so in the log.
Under ``torchrun``, a Ctrl-C reaches every worker twice, from the terminal and forwarded by the
agent, within milliseconds; a second SIGINT within ``torchrun_echo_s`` of the first is that copy.
torchrun kills its workers ``--shutdown_timeout`` seconds (default 30) after forwarding a signal.
"""
import os
import signal
import threading
import time
from typing import Dict, Optional, Sequence

from mmengine.hooks import Hook

from gear.registry import HOOKS


class TrainingInterrupted(SystemExit):
    """Training stopped on a signal at a step boundary, after saving ``checkpoint``; exits
    with status 128 + ``signum`` unless caught (gear.train adds the resume command)."""

    def __init__(self, signum: int, step: int, checkpoint: Optional[str]):
        super().__init__(128 + signum)
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


def submitit_handles(signums: Sequence[int]) -> bool:
    """Whether submitit's job runner bound any of ``signums``: it installs bound methods of its
    ``submitit.core.job_environment.SignalHandler`` (``JobEnvironment._handle_signals``)."""
    for signum in signums:
        owner = getattr(signal.getsignal(signum), '__self__', None)
        if type(owner).__module__.split('.')[0] == 'submitit':
            return True
    return False


def _submitit_signals() -> list:
    """The signals submitit binds: SIGTERM and its preemption signal (``SUBMITIT_PREEMPT_SIGNAL``,
    default USR2)."""
    name = 'SIG' + os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')
    return [signal.SIGTERM] + ([getattr(signal, name)] if hasattr(signal, name) else [])


@HOOKS.register_module()
class SignalHook(Hook):
    """On SIGINT / SIGTERM, checkpoint at the next step boundary and exit 128 + signum.

    The saving and the ranks' agreement on the step are the checkpoint hook's
    (``GearCheckpointHook``, ``default_hooks.checkpoint``); this hook holds the handlers and the
    pending signal.

    Args:
        signals (sequence of str): The signals that stop a run with a checkpoint.
        torchrun_echo_s (float): Under torchrun, a SIGINT this soon after the first is the
            agent's forwarded copy of the same Ctrl-C, not a second one.
    """
    priority = 'LOWEST'  # after_run: after the export of final.pth (a signal then waits)

    def __init__(self, signals: Sequence[str] = ('SIGINT', 'SIGTERM'),
                 torchrun_echo_s: float = 2.0):
        unknown = [s for s in signals if not isinstance(getattr(signal, str(s), None),
                                                        signal.Signals)]
        if unknown:
            raise ValueError(f'default_hooks.signals.signals: {unknown} are not signal names '
                             "(e.g. 'SIGINT', 'SIGTERM')")
        self.signals = [getattr(signal, s) for s in signals]
        self.torchrun_echo_s = float(torchrun_echo_s)
        self.pending = 0  # the signal to stop for, 0 if none
        self._stopped = False  # stop() ran: the process is on its way out
        self._received_at = 0.0
        self._previous: Optional[Dict[int, object]] = None  # None: not installed (yet)
        self._pid = None

    # ------------------------------------------------------------------ handlers
    def before_train_loop(self, runner) -> None:
        """Called by ``GearRunner.build_train_loop``, before the dataloader workers start."""
        self.install(runner.logger)

    def before_train(self, runner) -> None:
        self.install(runner.logger)  # a runner that is not a GearRunner

    def after_run(self, runner) -> None:
        if not self._stopped:  # a signal during the export at the end is ignored: complete
            self.restore()

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self, logger) -> None:
        """Install the handlers once (main thread, not under submitit); ``logger`` says why
        not."""
        if self._previous is not None:
            return
        self._previous = {}
        names = '/'.join(signal.Signals(s).name for s in self.signals)
        if submitit_handles(_submitit_signals()):
            logger.info(f'SignalHook: submitit handles this job\'s signals (USR2: '
                               f'checkpoint and requeue); {names} keep their handlers')
            return
        if threading.current_thread() is not threading.main_thread():
            logger.warning(
                f'SignalHook: training runs outside the main thread, where Python cannot '
                f'install signal handlers; {names} end the run without a checkpoint')
            return
        try:
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError as e:  # an interpreter that refuses handlers here
            self.restore()
            logger.warning(f'SignalHook: cannot install handlers for {names} ({e}); '
                                  'they end the run without a checkpoint')
            return
        self._pid = os.getpid()

    def restore(self) -> None:
        """Put the handlers back as they were before :meth:`install`."""
        for signum, previous in (self._previous or {}).items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {} if self._previous is not None else None

    def _handle(self, signum: int, frame) -> None:
        if os.getpid() != self._pid or self._stopped:
            return  # a forked dataloader worker (the main process decides), or exiting
        now = time.monotonic()
        if self.pending:
            echo = (os.environ.get('TORCHELASTIC_RUN_ID') is not None
                    and now - self._received_at < self.torchrun_echo_s)
            if signum == signal.SIGINT and not echo:
                raise KeyboardInterrupt  # a second Ctrl-C: stop at once, nothing saved
            return
        self.pending, self._received_at = signum, now
        again = '; Ctrl-C again to exit at once without it' if signum == signal.SIGINT else ''
        # os.write: the handler may have interrupted a print or a log call, whose buffers are
        # not reentrant
        os.write(2, f'\n{signal.Signals(signum).name} received: saving a checkpoint at the end '
                    f'of this step, then exiting{again}\n'.encode())

    # ------------------------------------------------------------------ stop
    def stop(self, runner, signum: int, checkpoint: Optional[str]) -> None:
        """Called on every rank once the checkpoint of the step is written: end the run."""
        step = runner.iter + 1
        rank = runner.rank if runner.world_size > 1 else None
        where = f'rank {rank}/{runner.world_size}: ' if rank is not None else ''
        os.write(2, f'{where}{signal.Signals(signum).name}: stopped at step {step}; '
                    f'checkpoint {checkpoint}\n'.encode())
        # the handlers stay, ignoring everything: torchrun sends SIGTERM to the ranks still
        # running once one has exited, and the default handler would kill this one mid-exit
        # (exit -15 instead of 143)
        self._stopped = True
        runner.call_hook('after_run')  # as a finished run does: the visualiser is closed
        raise TrainingInterrupted(signum, step, checkpoint)
