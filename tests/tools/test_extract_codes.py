"""``tools/extract_codes.py`` as a user runs it, on the shipped tiny codes config and real
Fashion-MNIST images, and ``tools/train.py`` on its codes:

- an extraction SIGKILLed mid-way leaves no codes under their name, only ``DIR.partial``; the
  same command then resumes it (the chunks already done are kept) and ends with arrays
  bit-identical to an uninterrupted extraction;
- under ``torchrun --nproc-per-node 2`` (gloo, items sharded over the ranks) the arrays are
  those of one process;
- training from the codes runs; training on another tokenizer than the codes' stops before the
  first step with an error naming both hashes, the codes and both checkpoints.
Every process runs one intra-op thread (torchrun's default for its workers), so float results
do not depend on the thread count and the arrays can be compared bit for bit.
"""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gear.apis.extract_codes import extract_codes
from gear.datasets.codes_store import DONE_DIR, META, done_chunks, partial_dir, read_meta

from ..codes_helpers import (CODES_CONFIG, assert_same_codes, cli_options, codes_cfg,
                             codes_options, stage_weights)
from ..conftest import DISTRIBUTED_ENV, REPO, run_tool, scalars

N, CHUNK = 12, 2  # six chunks
ONE_THREAD = dict(OMP_NUM_THREADS='1')


def extract_cmd(stage, root, *extra):
    return ['tools/extract_codes.py', CODES_CONFIG, '--batch-size', str(CHUNK), '--no-progress',
            '--device', 'cpu', *extra, '--cfg-options',
            *cli_options(codes_options(stage, root, N))]


@pytest.fixture(scope='module')
def clean(tmp_path_factory, fashion_mnist_root):
    """(stage-0 weights, codes root) of one uninterrupted extraction, in this process (what
    the command runs, without its start-up), on one thread as the commands below."""
    tmp = tmp_path_factory.mktemp('extract')
    stage = stage_weights(tmp / 'stage0.pth', seed=0)
    root = tmp / 'clean'
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        extract_codes(codes_cfg(stage, root, N), batch_size=CHUNK, device='cpu', progress=False)
    finally:
        torch.set_num_threads(threads)
    assert not os.path.exists(partial_dir(str(root))) and not (root / DONE_DIR).exists()
    assert read_meta(str(root))['num_chunks'] == N // CHUNK
    return stage, root


def test_killed_extraction_leaves_no_codes_and_the_rerun_completes_them(clean, tmp_path):
    stage, reference = clean
    root = tmp_path / 'codes'
    partial = partial_dir(str(root))
    proc = subprocess.Popen([sys.executable, *extract_cmd(stage, root)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, **ONE_THREAD))
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not done_chunks(partial):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-way: at least one chunk written, the rest not
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-3000:]
    done = len(done_chunks(partial))
    assert 1 <= done < N // CHUNK and os.path.isfile(os.path.join(partial, META))
    assert not root.exists()  # nothing a run would read
    rerun = run_tool(extract_cmd(stage, root), env=ONE_THREAD)
    resumed = [line for line in rerun.stdout.splitlines() + rerun.stderr.splitlines()
               if 'resuming' in line]
    assert resumed and f'{done} of {N // CHUNK} chunks already done' in resumed[0]  # kept
    assert not os.path.exists(partial)
    assert_same_codes(root, reference)


def test_two_ranks_write_what_one_process_writes(clean, tmp_path):
    stage, reference = clean
    root = tmp_path / 'codes'
    run_tool(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
              *extract_cmd(stage, root)], env=dict(DISTRIBUTED_ENV, **ONE_THREAD))
    assert_same_codes(root, reference)


def test_training_reads_its_codes_and_refuses_stale_ones(clean, tmp_path):
    stage, root = clean
    options = cli_options(codes_options(stage, root, N))
    short = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'global_batch_size=4',
             'val_dataloader.dataset.num_samples=4', 'default_hooks.logger.interval=1',
             'log_processor.window_size=1']
    work = tmp_path / 'run'
    run_tool(['tools/train.py', CODES_CONFIG, '--work-dir', str(work), '--cfg-options',
              *options, *short])
    assert [r['step'] for r in scalars(work) if 'prior/loss_ntp' in r] == [1, 2]

    other = stage_weights(tmp_path / 'other.pth', seed=5)  # the earlier stage, retrained
    stale = tmp_path / 'stale'
    proc = run_tool(['tools/train.py', CODES_CONFIG, '--work-dir', str(stale), '--cfg-options',
                     *options, f'model.init_from.0.checkpoint={other}', *short], check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert f'stale codes: {root} were extracted with the tokenizer of sha256 ' \
           f'{read_meta(str(root))["tokenizer_sha256"]}' in err
    assert f'checkpoint={stage}' in err and f'checkpoint={other}' in err
    assert "but this run's tokenizer has sha256" in err
    assert not [r for r in scalars(stale) if 'step' in r]  # stopped before any step
