"""Two CPU processes (torchrun + gloo) follow the one-process loss trajectory of GEAR stage 1,
under per-module DDP and under DeepSpeed ZeRO-2, and a ZeRO-2 checkpoint resumes it exactly.

Setup: configs/gear/gear_vq_tiny_fashionmnist.py for 4 steps from a random init
(``model.init_from=None``: CI has no stage-0 checkpoint), one process with batch 8 against two
processes with batch 4 each: the same global batch (the sampler deals rank r the samples r::2 of
the same shuffled order). ``disc_start=2``: the discriminator phase is skipped at steps 1-2 (its
DDP / engine is never called) and runs at steps 3-4, so a phase that does not run cannot hang.
What would make the runs differ, and what the test does about it:
- per-rank randomness: class dropout and token / residual / FFN dropout are set to 0;
- batch statistics: PatchGAN's BatchNorm normalises per process and torch's SyncBatchNorm has
  no CPU kernel, so ``norm='none'`` here (on GPUs: ``sync_bn='torch'``); the quantizer's entropy
  regulariser is a per-batch entropy, so ``entropy_loss_ratio=0``;
- every other loss is a batch mean, so the mean of the two ranks' gradients is the one-process
  gradient, up to float summation order.
Compared: every logged ``tokenizer/``, ``discriminator/`` and ``prior/`` value at every step
(two-process logs are means over ranks: LogSyncHook), relative tolerance 1e-4 (+1e-6 absolute); measured
agreement is about 1e-6. Step 1 runs at the warm-up LR (1e-3 x), so steps 3-4 carry the signal:
a prior phase that bypasses its DDP (no gradient all-reduce) misses the tolerance at step 3.
The resumed ZeRO-2 run must match the uninterrupted one at steps 3-4 to 1e-6: without the engine
shards (fp32 master weights, Adam moments) it would not.
Stage 2 (configs/ar/ar_vq_tiny_fashionmnist_vqonly.py, a random frozen tokenizer: no stage-1
checkpoint in CI) trains under ZeRO-3 (parameters partitioned; EMA updates and checkpoints gather
them): its iter_4.pth and final.pth hold whole parameters. (Its trajectory against one process and
its resume were checked by hand, notes_issue5a.md; a second launch here would cost ~25 s more.)
"""
import glob
import json
import os.path as osp
import shutil

import pytest
import torch

from ..conftest import run_tool

CONFIG = 'configs/gear/gear_vq_tiny_fashionmnist.py'
STEPS, GLOBAL_BATCH = 4, 8
COMMON = [  # no per-rank randomness; no validation; a log row per step; checkpoints at 2, 4
    'model.prior.ar.class_dropout_prob=0', 'model.prior.ar.token_dropout_p=0',
    'model.prior.ar.resid_dropout_p=0', 'model.prior.ar.ffn_dropout_p=0',
    'train_cfg.val_interval=1000', 'val_dataloader.dataset.num_samples=16',
    'default_hooks.logger.interval=1', 'log_processor.window_size=1',
    'default_hooks.checkpoint.interval=2']
OPTIONS = ['model.init_from=None', 'model.gan_loss.disc_start=2', 'model.discriminator.norm=none',
           'model.tokenizer.quantizer.entropy_loss_ratio=0', *COMMON]
PHASES = ('tokenizer/', 'discriminator/', 'prior/')


STAGE2_CONFIG = 'configs/ar/ar_vq_tiny_fashionmnist_vqonly.py'
STAGE2_OPTIONS = ['model.tokenizer_from=None', *COMMON]


def train(work_dir, procs, *args, options=(), config=CONFIG, base=OPTIONS):
    launch = (['-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={procs}']
              if procs > 1 else [])
    return run_tool([*launch, 'tools/train.py', config, '--work-dir', str(work_dir),
                     *(['--launcher', 'pytorch'] if procs > 1 else []), *args, '--cfg-options',
                     f'train_cfg.max_iters={STEPS}',
                     f'train_dataloader.batch_size={GLOBAL_BATCH // procs}', *base, *options],
                    timeout=400)


def losses(work_dir):
    """step -> {key: value} of the phase losses/metrics logged at that step."""
    out = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for row in map(json.loads, f):
                if 'tokenizer/loss' in row or 'prior/loss' in row:
                    out[row['step']] = {k: v for k, v in row.items() if k.startswith(PHASES)}
    return out


def assert_same_trajectory(expected, got, steps, rtol, atol=1e-6):
    missing = set(steps) - set(got)
    assert not missing, f'steps {sorted(missing)} not logged'
    for step in steps:
        assert set(got[step]) == set(expected[step]), f'step {step}: logged keys differ'
        for key, want in expected[step].items():
            assert abs(got[step][key] - want) <= atol + rtol * abs(want), \
                f'step {step} {key}: {got[step][key]} vs {want}'


def state_keys(path):
    return set(torch.load(path, map_location='cpu', weights_only=False)['state_dict'])


@pytest.fixture(scope='module')
def one_process(tmp_path_factory, fashion_mnist_root):
    work_dir = tmp_path_factory.mktemp('one_process')
    train(work_dir, 1)
    rows = losses(work_dir)
    assert sorted(rows) == [1, 2, 3, 4]
    assert not any(k.startswith('discriminator/') for k in rows[2])  # before disc_start
    assert 'discriminator/loss' in rows[3]
    return work_dir, rows


@pytest.fixture(scope='module')
def zero2(tmp_path_factory, fashion_mnist_root):
    pytest.importorskip('deepspeed', reason='DeepSpeed is not installed')
    work_dir = tmp_path_factory.mktemp('zero2')
    train(work_dir, 2, options=['deepspeed_cfg.zero_stage=2'])
    return work_dir


def test_ddp_per_module_follows_the_one_process_trajectory(one_process, tmp_path):
    work_dir, expected = one_process
    train(tmp_path, 2)
    assert_same_trajectory(expected, losses(tmp_path), range(1, STEPS + 1), rtol=1e-4)
    # the model tree is untouched: same state-dict keys as the one-process run
    assert state_keys(tmp_path / 'final.pth') == state_keys(work_dir / 'final.pth')


def test_zero2_engines_follow_the_one_process_trajectory(one_process, zero2):
    work_dir, expected = one_process
    assert_same_trajectory(expected, losses(zero2), range(1, STEPS + 1), rtol=1e-4)
    for group in ('tokenizer', 'discriminator', 'prior'):  # one engine per optimizer group
        shards = glob.glob(str(zero2 / 'iter_4.deepspeed' / group / 'zero_pp_rank_*_optim_*.pt'))
        assert len(shards) == 2, f'{group}: {shards}'
    ckpt = torch.load(zero2 / 'iter_4.pth', map_location='cpu', weights_only=False)
    assert all(ckpt['optimizer'][g]['deepspeed'] for g in ('tokenizer', 'discriminator', 'prior'))
    # the runner checkpoint and final.pth are plain, whole gear state dicts
    assert set(ckpt['state_dict']) == state_keys(work_dir / 'iter_4.pth')
    assert state_keys(zero2 / 'final.pth') == state_keys(work_dir / 'final.pth')


def test_zero2_resume_continues_the_trajectory(zero2, tmp_path):
    shutil.copy(zero2 / 'iter_2.pth', tmp_path / 'iter_2.pth')
    shutil.copytree(zero2 / 'iter_2.deepspeed', tmp_path / 'iter_2.deepspeed')
    proc = train(tmp_path, 2, '--resume', options=['deepspeed_cfg.zero_stage=2'])
    assert 'Loaded the DeepSpeed engine shards' in proc.stdout + proc.stderr
    resumed = losses(tmp_path)
    assert sorted(resumed) == [3, 4]
    assert_same_trajectory(losses(zero2), resumed, [3, 4], rtol=1e-6, atol=1e-7)


def test_zero3_stage2_trains_and_exports_whole_parameters(tmp_path, fashion_mnist_root):
    pytest.importorskip('deepspeed', reason='DeepSpeed is not installed')
    train(tmp_path, 2, config=STAGE2_CONFIG, base=STAGE2_OPTIONS,
          options=['deepspeed_cfg.zero_stage=3'])
    rows = losses(tmp_path)
    assert sorted(rows) == [1, 2, 3, 4] and rows[4]['prior/loss'] < rows[1]['prior/loss']
    assert osp.isdir(tmp_path / 'iter_4.deepspeed' / 'prior')
    final = torch.load(tmp_path / 'final.pth', weights_only=True)['state_dict']
    ckpt = torch.load(tmp_path / 'iter_4.pth', weights_only=False)['state_dict']
    assert final.keys() == ckpt.keys()
    prior = [k for k in final if k.startswith('prior.')]
    assert prior and all(final[k].numel() > 0 for k in final)  # gathered, not empty shards
    assert all(torch.equal(final[k], ckpt[k]) for k in prior)  # both whole, same step
    # the EMA was updated from whole parameters: it moved off its init toward the prior
    assert any(not torch.equal(final[k], final['prior_ema.module.' + k[len('prior.'):]])
               for k in prior)
