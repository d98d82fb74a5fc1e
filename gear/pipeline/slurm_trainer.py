"""The picklable job that ``slurm/launch.py`` submits for one stage, and how it is requeued.

Inside a SLURM job, each task (one per GPU, or one on a CPU node) runs ``Trainer.__call__``:
rank, world size, local rank and the master address and port come from the SLURM environment
(``submitit.JobEnvironment``) and are exported as ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` /
``MASTER_ADDR`` / ``MASTER_PORT``; torch gets ``--cpus-per-task`` threads (``OMP_NUM_THREADS``
wins if set). Then ``gear.train.main`` runs in-process, in the working directory the job was
submitted from, with ``--resume`` and ``--launcher pytorch`` (``none`` for a single task): the
same code path as a local or ``torchrun`` run.

Preemption and time limits: SLURM signals the job (USR2, ``signal_delay_s`` before the limit, or
on preemption); submitit then calls :meth:`Trainer.checkpoint`, which returns the same trainer
with ``requeues + 1``, and requeues the job under the same id. The requeued job resumes from the
newest complete checkpoint in its work dir (the runner writes them atomically every
``default_hooks.checkpoint.interval`` steps): step, optimizers, EMA, schedulers, RNG states and the
data position are restored, and the steps since that checkpoint are redone. Past
``max_requeues`` the job is not resubmitted. A job that fails with an error is never requeued:
submitit calls ``checkpoint`` only on a signal, and the traceback stays in the job's log.

A codes stage (``module='gear.extract_codes'``) runs ``gear.extract_codes.main`` the same way,
its chunks sharded over the tasks; a requeued one completes the partial extraction.
"""
import os
import os.path as osp
import re
import time
from typing import TYPE_CHECKING, Dict, List, Optional

from gear import extract_codes, train

ENTRY_POINTS = {'gear.train': train.main, 'gear.extract_codes': extract_codes.main}

if TYPE_CHECKING:
    import submitit

PORT_BASE = 20000


def log(message: str) -> None:
    """Print a ``[gear.slurm]`` line to the job's stdout log, with a UTC time stamp."""
    stamp = time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())
    print(f'[gear.slurm] {stamp} {message}', flush=True)


def master_port(job_id) -> int:
    """A port every task of a job agrees on: ``20000 + job_id % 20000`` (array suffix ignored).

    Args:
        job_id: The SLURM job id (``"1234"`` or ``"1234_5"``); a requeued job keeps its id.
    """
    match = re.match(r'\d+', str(job_id))
    if match is None:
        raise ValueError(f'cannot derive a port from the job id {job_id!r}')
    return PORT_BASE + int(match.group()) % PORT_BASE


def distributed_env(job_env) -> Dict[str, str]:
    """The torch.distributed variables of this task, from a ``submitit.JobEnvironment``.

    Args:
        job_env: The job environment (``global_rank``, ``num_tasks``, ``local_rank``,
            ``hostnames``, ``job_id``).

    Returns:
        ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` (the job's first node) and
        ``MASTER_PORT``, as strings ready for ``os.environ``.
    """
    return dict(RANK=str(job_env.global_rank), WORLD_SIZE=str(job_env.num_tasks),
                LOCAL_RANK=str(job_env.local_rank), MASTER_ADDR=str(job_env.hostnames[0]),
                MASTER_PORT=str(master_port(job_env.job_id)))


def set_threads() -> int:
    """Use as many torch threads as the task has CPUs (``SLURM_CPUS_PER_TASK``), not the node's.

    ``OMP_NUM_THREADS`` set by the user wins. Oversubscribed threads slow training down many
    times over (8 tasks on a 96-core node would each start 96 threads).
    """
    os.environ.setdefault('OMP_NUM_THREADS', os.environ.get('SLURM_CPUS_PER_TASK', '1'))
    import torch

    torch.set_num_threads(int(os.environ['OMP_NUM_THREADS']))
    return torch.get_num_threads()


class Trainer:
    """One stage as a submitit job; requeued on timeout or preemption, at most ``max_requeues``.

    Args:
        stage: The stage name (for logs).
        argv: ``gear.train`` arguments without ``--launcher``: the config, ``--work-dir``,
            ``--resume`` and ``--cfg-options``, as ``Pipeline.train_args`` builds them.
        work_dir: The stage's work dir (where its checkpoints and ``final.pth`` go).
        requeues: How many times this stage was requeued before this run.
        max_requeues: Requeues allowed; at the limit :meth:`checkpoint` declines.
        cwd: The working directory the job runs in (relative paths in configs are from
            there); default: the submitting process's.
        module: The stage's entry point, ``gear.train`` or ``gear.extract_codes`` (then
            ``argv`` is its arguments and ``work_dir`` the codes dir).
    """

    def __init__(self, stage: str, argv: List[str], work_dir: str, requeues: int = 0,
                 max_requeues: int = 3, cwd: Optional[str] = None, module: str = 'gear.train'):
        if module not in ENTRY_POINTS:
            raise ValueError(f'module: one of {sorted(ENTRY_POINTS)}, got {module!r}')
        self.module = module
        self.stage = stage
        self.argv = list(argv)
        self.work_dir = work_dir
        self.requeues = requeues
        self.max_requeues = max_requeues
        self.cwd = cwd or os.getcwd()

    def train_argv(self, world_size: int) -> List[str]:
        """The ``gear.train`` arguments of a run with ``world_size`` tasks (a codes stage's as
        given: the extraction reads the world from the environment)."""
        if self.module != 'gear.train':
            return list(self.argv)
        launcher = 'pytorch' if world_size > 1 else 'none'
        return [self.argv[0], '--launcher', launcher, *self.argv[1:]]

    def __call__(self) -> str:
        """Run (or resume) the stage in this task; returns the path of its ``final.pth``."""
        import submitit

        job_env = submitit.JobEnvironment()
        env = distributed_env(job_env)
        os.environ.update(env)
        threads = set_threads()
        world_size = int(env['WORLD_SIZE'])
        os.chdir(self.cwd)  # relative paths in configs (data, checkpoints) as at submission
        argv = self.train_argv(world_size)
        if env['RANK'] == '0':
            log(f'{self.stage}: job {job_env.job_id}, run {self.requeues + 1} (requeues '
                f'{self.requeues}/{self.max_requeues}), rank 0 of {world_size}, master '
                f'{env["MASTER_ADDR"]}:{env["MASTER_PORT"]}, {threads} threads per task')
            log(f'{self.stage}: python -m {self.module} {" ".join(argv)}')
        ENTRY_POINTS[self.module](argv)
        final = self.work_dir if self.module != 'gear.train' else osp.join(self.work_dir,
                                                                           'final.pth')
        if env['RANK'] == '0':
            log(f'{self.stage}: done, {final}')
        return final

    def checkpoint(self) -> Optional['submitit.helpers.DelayedSubmission']:
        """Called by submitit on timeout or preemption (rank 0): the job to requeue, or None.

        Nothing is saved here: the requeued run resumes from the newest complete checkpoint the
        runner wrote, so progress since that checkpoint is redone.
        """
        import submitit

        from gear.engine.runner import find_latest_checkpoint

        latest = find_latest_checkpoint(self.work_dir) or 'step 0 (no checkpoint yet)'
        if self.requeues >= self.max_requeues:
            log(f'{self.stage}: interrupted after {self.requeues} requeues (max_requeues '
                f'{self.max_requeues}); NOT requeued. Rerun the launch command to continue '
                f'from {latest}')
            return None
        log(f'{self.stage}: interrupted; requeue {self.requeues + 1}/{self.max_requeues}, '
            f'resumes from {latest}')
        return submitit.helpers.DelayedSubmission(self.__class__(
            self.stage, self.argv, self.work_dir, self.requeues + 1, self.max_requeues, self.cwd,
            self.module))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.stage!r}, requeues={self.requeues}/'
                f'{self.max_requeues}, work_dir={self.work_dir!r})')
