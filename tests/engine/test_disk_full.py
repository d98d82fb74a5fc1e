"""A checkpoint write that fails (a full disk) on the shipped tiny stage 0, run as a user runs it
(``tools/train.py`` in a subprocess, shortened in length only; a checkpoint every 2 steps):
the error names the file, the errno and the complete checkpoint ``--resume`` will use, with the
command; that checkpoint and ``last_checkpoint`` are as they were; nothing is left under the new
name, no temporary file either. The disk:

- ``iter_4.pth`` (one checkpoint kept: ``max_keep_ckpts=1``) and ``last_checkpoint``: gear's own
  checkpoint writer (``AtomicLocalBackend``, real files) whose file object takes 1 MiB (5 bytes)
  more, then fails with ENOSPC (tests/engine/full_disk.py, through
  ``default_hooks.checkpoint.backend_args``); resuming after "freeing space" finishes the run;
- ``final.pth``: the kernel's file size limit (``RLIMIT_FSIZE``, EFBIG), no test code in the
  write path; the old ``final.pth`` stays;
- a real 1.5-checkpoint tmpfs (the kernel's ENOSPC) where mounting one is permitted (root),
  skipped otherwise.
"""
import glob
import os
import os.path as osp
import resource
import signal
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from ..conftest import REPO, run_tool, scalars
from .test_signals import CONFIG, LENGTH, SMALL_BATCH

STEPS = 4
FOUR_STEPS = [*LENGTH, *SMALL_BATCH, f'train_cfg.max_iters={STEPS}',
              'default_hooks.checkpoint.interval=2']


def full_disk(full_at: str, nth: int = 1, free_bytes: int = 1 << 20):
    key = 'default_hooks.checkpoint.backend_args'
    return [f'{key}.backend=gear_test_full_disk', f'{key}.full_at={full_at}', f'{key}.nth={nth}',
            f'{key}.free_bytes={free_bytes}']


@pytest.fixture(scope='module')
def config_on_a_full_disk(tmp_path_factory):
    """The shipped stage 0, importing tests/engine/full_disk.py (its backend)."""
    cfg = Config.fromfile(osp.join(REPO, CONFIG))
    cfg.custom_imports = dict(imports=['tests.engine.full_disk'], allow_failed_imports=False)
    path = tmp_path_factory.mktemp('full_disk') / 'tokenizer_vq_tiny_fashionmnist.py'
    cfg.dump(str(path))
    return str(path)


def train(config, work_dir, *extra, options=()):
    return run_tool(['tools/train.py', config, '--work-dir', str(work_dir), *extra,
                     '--cfg-options', *FOUR_STEPS, *options], check=False)


def leftovers(work_dir):
    """Temporary files of atomic writes (``.NAME.XXXX.tmp``)."""
    return glob.glob(osp.join(str(work_dir), '.*.tmp'))


def checkpoint_step(path) -> int:
    return torch.load(path, map_location='cpu', weights_only=False)['meta']['iter']


# one checkpoint kept: the previous one survives only if the new one is written before the
# rotation removes the old one (mmengine's own order removes first)
KEEP_ONE = ['default_hooks.checkpoint.max_keep_ckpts=1']


@pytest.fixture(scope='module')
def full_at_iter_4(config_on_a_full_disk, tmp_path_factory, fashion_mnist_root):
    work_dir = tmp_path_factory.mktemp('full_at_iter_4') / 'run'
    proc = train(config_on_a_full_disk, work_dir, options=[*KEEP_ONE, *full_disk('iter_4.pth')])
    return work_dir, proc


def test_a_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(full_at_iter_4):
    work_dir, proc = full_at_iter_4
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert (f'error: no space left on device while writing {work_dir}/iter_4.pth (ENOSPC); '
            f'the newest complete checkpoint is {work_dir}/iter_2.pth and --resume will use it; '
            f'free space and resume:\n  python tools/train.py ') in proc.stderr, proc.stderr[-3000:]
    assert f'--work-dir {work_dir} --resume --cfg-options ' in proc.stderr
    assert 'Traceback' not in proc.stderr  # a message, not a stack
    assert checkpoint_step(work_dir / 'iter_2.pth') == 2
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_2.pth')
    assert not (work_dir / 'iter_4.pth').exists() and not leftovers(work_dir)


@pytest.fixture(scope='module')
def resumed(full_at_iter_4):
    """The same run resumed with space to spare (the shipped config, no full disk)."""
    work_dir, _ = full_at_iter_4
    return work_dir, run_tool(['tools/train.py', CONFIG, '--work-dir', str(work_dir), '--resume',
                               '--cfg-options', *FOUR_STEPS, *KEEP_ONE])


def test_resume_after_freeing_space_redoes_the_lost_steps_and_finishes(resumed):
    work_dir, proc = resumed
    assert f'Resuming from the latest checkpoint {work_dir}/iter_2.pth' in proc.stdout + proc.stderr
    # steps 3 and 4 were trained before the failed save and are redone from iter_2.pth
    assert [r['step'] for r in scalars(work_dir) if 'tokenizer/loss_recon' in r] == [
        1, 2, 3, 4, 3, 4]
    assert checkpoint_step(work_dir / 'iter_4.pth') == STEPS
    assert not (work_dir / 'iter_2.pth').exists()  # rotated out once iter_4.pth was complete
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_4.pth')
    assert osp.isfile(work_dir / 'final.pth') and not leftovers(work_dir)


def test_a_full_disk_while_updating_last_checkpoint_keeps_the_old_pointer(
        config_on_a_full_disk, tmp_path, fashion_mnist_root):
    """The second pointer update (to iter_4.pth) gets 5 bytes on disk: the pointer still names
    iter_2.pth, whole; iter_4.pth, written before it, is complete."""
    work_dir = tmp_path / 'run'
    proc = train(config_on_a_full_disk, work_dir,
                 options=full_disk('last_checkpoint', nth=2, free_bytes=5))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert (f'error: no space left on device while writing {work_dir}/last_checkpoint (ENOSPC); '
            f'the newest complete checkpoint is {work_dir}/iter_2.pth and --resume will use '
            'it') in proc.stderr, proc.stderr[-3000:]
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_2.pth')
    assert checkpoint_step(work_dir / 'iter_2.pth') == 2
    assert checkpoint_step(work_dir / 'iter_4.pth') == 4
    assert not leftovers(work_dir)


def _file_size_limit(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write(2) fails with EFBIG instead
    return apply


def test_a_file_size_limit_while_writing_final_pth_keeps_the_old_one(resumed):
    """``--resume`` of the finished run writes only ``final.pth`` again (no step is left), in a
    process whose files may not grow past 1 MiB (final.pth: ~20 MB)."""
    work_dir, _ = resumed
    before = (work_dir / 'final.pth').read_bytes()
    proc = subprocess.run([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work_dir),
                           '--resume', '--cfg-options', *FOUR_STEPS, *KEEP_ONE], cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONUNBUFFERED='1'),
                          preexec_fn=_file_size_limit(1 << 20))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert (f'error: file too large while writing {work_dir}/final.pth (EFBIG); the newest '
            f'complete checkpoint is {work_dir}/iter_4.pth and --resume will use it; raise the '
            'file size limit (ulimit -f) and resume:') in proc.stderr, proc.stderr[-3000:]
    assert (work_dir / 'final.pth').read_bytes() == before and not leftovers(work_dir)


def test_a_real_full_tmpfs(full_at_iter_4, tmp_path):
    """On a tmpfs of 1.5 checkpoints, iter_2.pth fits and iter_4.pth (a second one) does not."""
    work_dir, _ = full_at_iter_4
    size = os.path.getsize(glob.glob(str(work_dir / 'iter_*.pth'))[0]) * 3 // 2
    disk = tmp_path / 'disk'
    disk.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f'mounting a tmpfs is not permitted here ({mounted.stderr.strip()}); the '
                    'other tests fill a disk through a limited file instead')
    try:
        run = disk / 'run'
        proc = run_tool(['tools/train.py', CONFIG, '--work-dir', str(run), '--cfg-options',
                         *FOUR_STEPS], check=False)
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert (f'error: no space left on device while writing {run}/iter_4.pth (ENOSPC); the '
                f'newest complete checkpoint is {run}/iter_2.pth and --resume will use it; '
                'free space and resume:') in proc.stderr, proc.stderr[-3000:]
        assert checkpoint_step(run / 'iter_2.pth') == 2
        assert (run / 'last_checkpoint').read_text() == str(run / 'iter_2.pth')
        assert not (run / 'iter_4.pth').exists() and not leftovers(run)
    finally:
        subprocess.run(['umount', str(disk)], check=True)
