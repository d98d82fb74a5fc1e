"""Resume is exact, and refuses what it cannot continue.

- SIGKILL at a random step of the shipped stage-0 and stage-1 configs, then ``--resume``: every
  value logged (losses, gradient norms, codebook statistics, validation metrics) at every step
  equals an uninterrupted run's, bit for bit. The killed step is drawn anew each run and printed
  on failure.
- A resume with another ``global_batch_size`` stops before any state is loaded, naming both
  values. (Another world size: tests/engine/test_distributed.py.)
"""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from gear.engine.config_check import ConfigError
from gear.engine.resume_check import check_resume, run_record

from ..conftest import REPO, run_tool, scalars
from .test_train import FAST

S0 = 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'
S1 = 'configs/gear/gear_vq_tiny_fashionmnist.py'
NOT_COMPARED = ('time', 'data_time', 'eta', 'memory')


def command(config, work_dir, max_iters, options, *extra):
    return [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir), *extra,
            '--cfg-options', f'train_cfg.max_iters={max_iters}', *FAST, *options]


def logged(work_dir):
    """(step, 'train' | 'val') -> the values logged there; a step logged twice (redone after a
    resume) keeps its last values, and its first ones are returned in ``first``."""
    last, first = {}, {}
    for row in scalars(work_dir):
        kind = 'val' if any(k.startswith(('recon/', 'val/')) for k in row) else 'train'
        values = {k: v for k, v in row.items() if k not in NOT_COMPARED}
        first.setdefault((row['step'], kind), values)
        last[(row['step'], kind)] = values
    return last, first


def kill_at_step(cmd, work_dir, step, timeout=300):
    """Start ``cmd``; SIGKILL it as soon as it has logged ``step``."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONUNBUFFERED='1'))
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(r['step'] >= step and 'time' in r for r in scalars(work_dir)):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        f'the run ended ({proc.returncode}) before it was killed at step {step}\n'
        f'{proc.stderr.read().decode()[-3000:]}')


def assert_resume_is_exact(config, tmp, max_iters, options=()):
    reference = tmp / 'uninterrupted'
    run_tool(command(config, reference, max_iters, options)[1:])
    expected, _ = logged(reference)
    # from step 3 on, iter_2.pth (FAST: a checkpoint every 2 steps) is complete: a real resume
    step = random.SystemRandom().randint(3, max_iters - 1)
    killed = tmp / 'killed'
    kill_at_step(command(config, killed, max_iters, options), killed, step)
    resumed = run_tool(command(config, killed, max_iters, options, '--resume')[1:])
    got, before_kill = logged(killed)
    where = f'(killed at step {step} of {max_iters})'
    assert 'Resuming from the latest checkpoint' in resumed.stdout + resumed.stderr, where
    assert sorted(got) == sorted(expected), where
    for key, values in expected.items():
        assert got[key] == values, f'{config} {where}: step {key} differs after resume'
        if key in before_kill:
            assert before_kill[key] == values, f'{where}: step {key} before the kill'


def test_sigkill_at_a_random_step_then_resume_is_bit_exact_stage0(tmp_path, fashion_mnist_root):
    assert_resume_is_exact(S0, tmp_path, 8)


def test_sigkill_at_a_random_step_then_resume_is_bit_exact_stage1(tmp_path, fashion_mnist_root):
    stage0 = tmp_path / 'stage0'
    run_tool(command(S0, stage0, 2, [])[1:])
    assert_resume_is_exact(S1, tmp_path, 6, [f'model.init_from.0.checkpoint={stage0 / "final.pth"}'])


def test_resume_with_another_global_batch_is_refused_naming_both(tmp_path, fashion_mnist_root):
    run_tool(command(S0, tmp_path, 2, [])[1:])  # FAST: global_batch_size=8
    proc = run_tool(command(S0, tmp_path, 4, ['global_batch_size=4'], '--resume')[1:], check=False)
    assert proc.returncode != 0
    assert 'global_batch_size=8' in proc.stderr and 'global_batch_size=4' in proc.stderr
    assert not (tmp_path / 'iter_4.pth').exists()


def test_resume_rules():
    saved = run_record(world_size=2, global_batch_size=8, zero_stage=None)
    assert check_resume(saved, dict(saved), 'w/iter_2.pth') is None
    assert check_resume(None, run_record(4, 16, 2), 'old.pth') is None  # before the record
    note = check_resume(saved, run_record(1, 8, None), 'w/iter_2.pth')  # DDP 2 -> 1: allowed
    assert 'written by 2 rank(s), this run has 1' in note
    with pytest.raises(ConfigError, match=r'ZeRO-2 shards were written by 2 ranks, with 4'):
        check_resume(run_record(2, 8, 2), run_record(4, 8, 2), 'w/iter_2.pth')
    with pytest.raises(ConfigError, match=r'zero_stage=2 .* zero_stage=None'):
        check_resume(run_record(2, 8, 2), run_record(2, 8, None), 'w/iter_2.pth')
