"""A collective that not every rank reaches fails the run, naming the rank and the operation:
- under ``TORCH_DISTRIBUTED_DEBUG=DETAIL`` (how the multi-process tests run), two ranks calling
  different collectives fail at once, even after gear built a DDP (which runs on a group of
  its own there: gear.utils.distributed);
- a rank waiting in a collective that another rank never reaches fails after
  ``env_cfg.dist_cfg.timeout`` seconds with ``rank R/W: all_reduce failed in FILE:LINE``,
  instead of waiting forever (the shipped stage 0, a hook with the shipped configs' old bug).
"""
import time

from mmengine.config import Config

from ..conftest import DISTRIBUTED_ENV, REPO, run_tool

TIMEOUT_S = 10


def test_mismatched_collectives_fail_at_once_under_detail():
    proc = run_tool(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                     'tests/engine/collective_faults.py'], env=DISTRIBUTED_ENV, check=False,
                    timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'Detected mismatch between collectives' in out, out[-3000:]
    assert 'TensorShape=[3]' in out and 'TensorShape=[5]' in out  # both calls named


def test_a_collective_one_rank_never_reaches_times_out_naming_rank_and_operation(
        tmp_path, fashion_mnist_root):
    cfg = Config.fromfile(f'{REPO}/configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py')
    cfg.custom_imports = dict(imports=['tests.engine.collective_faults'],
                              allow_failed_imports=False)
    cfg.custom_hooks = [*cfg.custom_hooks, dict(type='RankZeroCollectiveHook', busy_s=6 * TIMEOUT_S)]
    config = tmp_path / 'stage0_with_fault.py'
    cfg.dump(str(config))
    start = time.monotonic()
    proc = run_tool(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                     'tools/train.py', str(config), '--work-dir', str(tmp_path / 'run'),
                     '--launcher', 'pytorch', '--cfg-options', 'train_cfg.max_iters=2',
                     'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=1',
                     f'env_cfg.dist_cfg.timeout={TIMEOUT_S}'],
                    env=DISTRIBUTED_ENV, check=False, timeout=300)
    elapsed = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert 'rank 0/2: all_reduce failed in' in out, out[-4000:]
    assert 'collective_faults.py' in out.split('rank 0/2: all_reduce failed in')[1].split('\n')[0]
    assert f'env_cfg.dist_cfg.timeout = {TIMEOUT_S} s' in out
    assert elapsed < 5 * TIMEOUT_S + 60  # well before the busy rank would have come back
    assert not (tmp_path / 'run' / 'iter_1.pth').exists()  # rank 0 never wrote a checkpoint
