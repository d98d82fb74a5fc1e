"""SIGINT / SIGTERM outside SLURM and checkpoints on time, on the shipped tiny stage 0 run as a
user runs it (``tools/train.py`` in a subprocess, shortened in length only):

- Ctrl-C (SIGINT to the run's process group, as a terminal sends it) after step 2: a checkpoint
  at the step boundary, exit 130, the resume command printed; that command finishes the run with
  the logged losses of an uninterrupted one, bit for bit;
- a second Ctrl-C right after the first: exit 130 at once, no checkpoint of that step;
- ``default_hooks.checkpoint.time_interval=0.01`` (0.6 s): checkpoints when, and only when, that
  long has passed since the last one (the hook logs the time it measured); 6 steps take ~2 s;
- SIGTERM to rank 1 alone of a 2-process ``torchrun`` (gloo, ``TORCH_DISTRIBUTED_DEBUG=DETAIL``,
  a 0.6 s ``time_interval`` on rank 0's clock as well, whose checkpoints every rank must agree
  on too): both ranks stop at the same step, rank 0 writes its checkpoint, both exit 143;
- inside a submitit job (its real ``JobEnvironment._handle_signals``) and off the main thread,
  the hook leaves the handlers as they are.
"""
import glob
import logging
import os
import os.path as osp
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from ..conftest import DISTRIBUTED_ENV, REPO, TEST_DIST_TIMEOUT, run_tool, scalars

CONFIG = 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'
STEPS = 6
# a log line (and a scalars.json row) every step; no step-based checkpoint before the last; the
# GAN phase from step 1, so every loss term runs
LENGTH = [f'train_cfg.max_iters={STEPS}', 'val_dataloader.dataset.num_samples=16',
          'val_dataloader.batch_size=16', 'train_cfg.val_interval=100',
          'default_hooks.checkpoint.interval=100', 'default_hooks.logger.interval=1',
          'log_processor.window_size=1', 'model.gan_loss.disc_start=1']
SMALL_BATCH = ['global_batch_size=8']
TIME_INTERVAL_MIN = 0.01


def start(work_dir, *extra, options=(), launcher=None, env=None):
    """Start ``tools/train.py`` (or under ``launcher``) in a session of its own, as from a
    terminal; stdout and stderr go to ``work_dir``/../*.out."""
    out = open(f'{work_dir}.out', 'w')
    cmd = [*(launcher or [sys.executable]), 'tools/train.py', CONFIG, '--work-dir',
           str(work_dir), *extra, '--cfg-options', *LENGTH, *options]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED='1', **(env or {})),
                            start_new_session=True)
    proc.out_path = f'{work_dir}.out'
    return proc


def output(proc) -> str:
    with open(proc.out_path) as f:
        return f.read()


def wait_for(proc, pattern, timeout=240):
    """Wait until the run's output matches ``pattern``; return the match."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, output(proc))
        if match:
            return match
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f'{pattern!r} not seen (exit {proc.poll()}):\n{output(proc)[-4000:]}')


def finish(proc, timeout=240) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f'still running after {timeout} s:\n{output(proc)[-4000:]}')


def train_rows(work_dir):
    """The logged training values of each step (times left out), by step."""
    return {r['step']: {k: v for k, v in r.items() if 'time' not in k}
            for r in scalars(work_dir) if 'tokenizer/loss_recon' in r}


def stray_files(work_dir):
    return glob.glob(osp.join(str(work_dir), '.*.tmp'))


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, fashion_mnist_root):
    """An uninterrupted run, checkpointing every 0.01 min as well (saving changes no value)."""
    work_dir = tmp_path_factory.mktemp('signals') / 'uninterrupted'
    proc = run_tool(['tools/train.py', CONFIG, '--work-dir', str(work_dir), '--cfg-options',
                     *LENGTH, *SMALL_BATCH,
                     f'default_hooks.checkpoint.time_interval={TIME_INTERVAL_MIN}'])
    return work_dir, proc.stdout + proc.stderr


def test_ctrl_c_saves_at_the_step_boundary_and_the_printed_command_resumes_exactly(
        uninterrupted, tmp_path):
    reference, _ = uninterrupted
    work_dir = tmp_path / 'run'
    proc = start(work_dir, options=SMALL_BATCH)
    wait_for(proc, r'Iter\(train\) \[2/6\]')
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    assert finish(proc) == 130, output(proc)[-3000:]
    out = output(proc)
    step = int(re.search(r'SIGINT: stopped at step (\d+); checkpoint', out).group(1))
    assert 2 <= step < STEPS
    ckpt = work_dir / f'iter_{step}.pth'
    assert torch.load(ckpt, map_location='cpu', weights_only=False)['meta']['iter'] == step
    assert (work_dir / 'last_checkpoint').read_text() == str(ckpt)
    assert not stray_files(work_dir) and not (work_dir / 'final.pth').exists()
    command = re.search(r'Resume with:\n  (.*)\n', out).group(1)
    assert command.startswith(f'python tools/train.py {CONFIG} --work-dir {work_dir} --resume '
                              '--cfg-options ')
    argv = shlex.split(command)
    resumed = run_tool(argv[1:])  # python -> this interpreter
    assert f'Resuming from the latest checkpoint {ckpt}' in resumed.stdout + resumed.stderr
    rows, expected = train_rows(work_dir), train_rows(reference)
    assert sorted(rows) == list(range(1, STEPS + 1))
    for s in range(1, STEPS + 1):
        assert rows[s] == expected[s], f'step {s}'  # bit for bit (JSON of the float values)


def test_a_second_ctrl_c_exits_at_once_without_saving(tmp_path, fashion_mnist_root):
    """The shipped batch (32): a step lasts ~1 s, so the second Ctrl-C, sent as soon as the run
    says it got the first, lands before the step boundary or within its save (~0.3 s)."""
    work_dir = tmp_path / 'run'
    proc = start(work_dir)
    wait_for(proc, r'Iter\(train\) \[1/6\]')
    os.killpg(proc.pid, signal.SIGINT)
    wait_for(proc, 'SIGINT received: saving a checkpoint at the end of this step')
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    assert finish(proc) == 130, output(proc)[-3000:]
    elapsed = time.monotonic() - sent
    out = output(proc)
    assert 'SIGINT twice: stopped at once without a checkpoint of this step' in out, out[-3000:]
    assert 'there is no complete checkpoint yet: --resume starts at step 0' in out
    # nothing written: the step had not ended, or its save (begun just then) was cut short
    assert not glob.glob(str(work_dir / '*.pth')) and not stray_files(work_dir)
    assert elapsed < 10, elapsed


def test_time_interval_saves_when_that_long_has_passed(uninterrupted):
    work_dir, out = uninterrupted
    timed = [(int(step), float(s)) for step, s in re.findall(
        r'Saving checkpoint at (\d+) iterations \(time_interval=0.01 min: ([\d.]+) s since',
        out)]
    assert timed, out[-3000:]
    assert all(s >= TIME_INTERVAL_MIN * 60 for _, s in timed), timed
    steps = [step for step, _ in timed]
    assert steps == sorted(set(steps)) and steps[-1] < STEPS
    # the shipped max_keep_ckpts=2: the newest two remain, the pointer on the last step's
    kept = sorted(int(re.search(r'(\d+)', osp.basename(p)).group(1))
                  for p in glob.glob(str(work_dir / 'iter_*.pth')))
    assert kept == [steps[-1], STEPS]
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / f'iter_{STEPS}.pth')


def _rank_pid(parent: int, rank: int, timeout: float = 60) -> int:
    """The pid of torchrun's worker with ``RANK=rank``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in glob.glob('/proc/[0-9]*/stat'):
            pid = int(task.split('/')[2])
            try:
                with open(task) as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
                if ppid != parent:
                    continue
                with open(f'/proc/{pid}/environ', 'rb') as f:
                    env = dict(v.split(b'=', 1) for v in f.read().split(b'\0') if b'=' in v)
            except (OSError, ValueError, IndexError):
                continue
            if env.get(b'RANK') == str(rank).encode():
                return pid
        time.sleep(0.2)
    raise AssertionError(f'no worker with RANK={rank} under pid {parent}')


def test_sigterm_to_one_rank_stops_both_ranks_at_the_same_step(tmp_path, fashion_mnist_root):
    work_dir = tmp_path / 'run'
    proc = start(work_dir, '--launcher', 'pytorch',
                 options=[*SMALL_BATCH, TEST_DIST_TIMEOUT,
                          'default_hooks.checkpoint.time_interval=0.01'],
                 launcher=[sys.executable, '-m', 'torch.distributed.run', '--standalone',
                           '--nproc_per_node=2'], env=DISTRIBUTED_ENV)
    wait_for(proc, r'Iter\(train\) \[2/6\]')
    os.kill(_rank_pid(proc.pid, 1), signal.SIGTERM)  # rank 0 never gets a signal
    assert finish(proc) != 0
    out = output(proc)
    stops = dict(re.findall(r'rank (\d)/2: SIGTERM: stopped at step (\d+)', out))
    assert set(stops) == {'0', '1'}, out[-4000:]
    assert stops['0'] == stops['1'], stops  # the same step boundary
    step = int(stops['0'])
    assert step < STEPS
    ckpt = work_dir / f'iter_{step}.pth'
    assert torch.load(ckpt, map_location='cpu', weights_only=False)['meta']['iter'] == step
    assert (work_dir / 'last_checkpoint').read_text() == str(ckpt)
    assert not glob.glob(str(work_dir / f'iter_{step + 1}.pth')) and not stray_files(work_dir)
    # torchrun's report of its workers
    codes = re.findall(r'rank\s*: (\d) \(local_rank: \d\)\n\s*exitcode\s*: (\d+)', out)
    assert sorted(codes) == [('0', '143'), ('1', '143')], out[-3000:]
    assert (f'torchrun --nproc_per_node 2 tools/train.py {CONFIG} --work-dir {work_dir} '
            '--launcher pytorch --resume --cfg-options ') in out


def test_submitit_handlers_and_other_threads_are_left_alone(monkeypatch, caplog, tmp_path):
    """The handlers submitit installs in a job (``JobEnvironment._handle_signals``) stay; off
    the main thread nothing is installed and the log says so."""
    from gear.engine.hooks.signals import SignalHook
    pytest.importorskip('submitit')
    from submitit.core.job_environment import JobEnvironment
    from submitit.core.utils import DelayedSubmission
    from submitit.local.local import LocalJobEnvironment

    logger = logging.getLogger('gear.signals')
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2,
                                              signal.SIGCONT)}
    try:
        for key, value in dict(SUBMITIT_LOCAL_JOB_ID='12', SUBMITIT_LOCAL_NTASKS='1',
                               SUBMITIT_LOCAL_JOB_NUM_NODES='1', SUBMITIT_LOCAL_NODEID='0',
                               SUBMITIT_LOCAL_GLOBALID='0', SUBMITIT_LOCAL_LOCALID='0',
                               SUBMITIT_FOLDER=str(tmp_path)).items():
            monkeypatch.setenv(key, value)
        env = LocalJobEnvironment()
        JobEnvironment._handle_signals(env, env.paths, DelayedSubmission(print))
        submitits = signal.getsignal(signal.SIGTERM)
        assert type(submitits.__self__).__module__.startswith('submitit')
        hook = SignalHook()
        with caplog.at_level(logging.INFO, logger='gear.signals'):
            hook.install(logger)
        assert not hook.installed and signal.getsignal(signal.SIGTERM) == submitits
        assert signal.getsignal(signal.SIGINT) == saved[signal.SIGINT]
        assert 'submitit handles' in caplog.text
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    hook = SignalHook()
    with caplog.at_level(logging.INFO, logger='gear.signals'):
        thread = threading.Thread(target=hook.install, args=(logger, ))
        thread.start()
        thread.join()
    assert not hook.installed and signal.getsignal(signal.SIGTERM) == saved[signal.SIGTERM]
    assert 'outside the main thread' in caplog.text
    hook = SignalHook()
    hook.install(logger)  # the main thread, no submitit: installed, then restored
    assert hook.installed and signal.getsignal(signal.SIGTERM) == hook._handle
    hook.restore()
    assert signal.getsignal(signal.SIGTERM) == saved[signal.SIGTERM]
