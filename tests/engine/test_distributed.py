"""Multi-process training as shipped: every tiny config runs to the end on two CPU processes
(torchrun, gloo, ``TORCH_DISTRIBUTED_DEBUG=DETAIL``) with all its hooks, validation, checkpoints
and export; only ``max_iters``, ``val_interval`` and ``checkpoint.interval`` are shortened (the
shipped log interval, 20, is never reached, so every checkpoint flushes unlogged values first).

Strategies: per-module DDP for every stage (stage 0 -> 1 -> 2 vq-only and the baseline as the
tiny pipeline under ``--launcher pytorch``, tests/conftest.py; ar-init here); DeepSpeed ZeRO-1
and ZeRO-2 for every stage; ZeRO-3 for stage 2 (vq-only, ar-init) and the baseline. Stages 1
and 2 start from the pipeline's exports. Each run must end with ``final.pth``, after the
checkpoint and the validation of its last step (where every shipped config used to die: the log
flush, a collective, ran in rank 0's ``before_save_checkpoint`` while rank 1 validated).

Two processes follow one: stage 1 as shipped (every loss term on, the entropy regulariser
included) with dropout off (its draws differ per rank) and ``sync_bn='gear'`` (PatchGAN's
BatchNorm on the global batch; without it each rank normalises its own batch), global batch 8
(``global_batch_size``: 2 x 4 against 1 x 8, one thread, as each rank) from the same stage-0 export: every logged
``tokenizer/``, ``discriminator/`` and ``prior/`` value and (DDP) the gradient norm of every group
agree at steps 1-3 to 1e-4 relative (measured: about 1e-6 for the losses, 2e-6 for the grad
norms), and so do the validation metrics on 501 images after step 2 (rank 1 validates a
padded duplicate, which the evaluator drops). A ZeRO-2 run resumed from its ``iter_2``
reproduces steps 3-4.

The matrix and the trajectory runs share one torchrun launch (tests/engine/train_many.py: each
run is ``gear.train.main`` in the same processes, as in a SLURM task).
"""
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch

from ..conftest import DISTRIBUTED_ENV, TEST_DIST_TIMEOUT, run_tool, scalars, t2i_options

S0 = 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'
S1 = 'configs/gear/gear_vq_tiny_fashionmnist.py'
VQONLY = 'configs/ar/ar_vq_tiny_fashionmnist_vqonly.py'
ARINIT = 'configs/ar/ar_vq_tiny_fashionmnist_arinit.py'
BASELINE = 'configs/ar/baseline_vq_tiny_fashionmnist.py'
S1_T2I = 'configs/gear/gear_vq_tiny_fashionmnist_t2i.py'
VQONLY_T2I = 'configs/ar/ar_vq_tiny_fashionmnist_t2i_vqonly.py'
LENGTH = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
          'default_hooks.checkpoint.interval=1', TEST_DIST_TIMEOUT]
STRATEGIES = {'ddp': [], 'zero1': ['deepspeed_cfg.zero_stage=1'],
              'zero2': ['deepspeed_cfg.zero_stage=2'], 'zero3': ['deepspeed_cfg.zero_stage=3']}
# (config, strategies); DDP of the other four stages is the pipeline's
MATRIX = {'stage0': (S0, ['zero1', 'zero2']), 'stage1': (S1, ['zero1', 'zero2']),
          'vqonly': (VQONLY, ['zero1', 'zero2', 'zero3']),
          'arinit': (ARINIT, ['ddp', 'zero1', 'zero2', 'zero3']),
          'baseline': (BASELINE, ['zero1', 'zero2', 'zero3']),
          'stage1_t2i': (S1_T2I, ['ddp']), 'vqonly_t2i': (VQONLY_T2I, ['ddp', 'zero2'])}
T2I = ('stage1_t2i', 'vqonly_t2i')
GROUPS = {'stage0': ('tokenizer', 'discriminator'),
          'stage1': ('tokenizer', 'discriminator', 'prior')}

TRAJ_STEPS, TRAJ_BATCH = 4, 8
# Step 1 runs at the warm-up LR (1e-3 x), so step 3's losses carry the first full-LR update.
# Step 4 is not compared: Adam normalises near-zero gradient entries, so 1e-7 summation
# differences there become LR-sized updates; by step 4 they move the GAN logits by up to 1%
# (ZeRO-2's reduce-scatter vs one process, measured), as two threads against one do in a single
# process (5%).
COMPARED_STEPS = (1, 2, 3)
TRAJ = ['model.prior.ar.class_dropout_prob=0', 'model.prior.ar.token_dropout_p=0',
        'model.prior.ar.resid_dropout_p=0', 'model.prior.ar.ffn_dropout_p=0',
        f'train_cfg.max_iters={TRAJ_STEPS}', 'train_cfg.val_interval=2',  # after steps 2, 4
        'default_hooks.logger.interval=1', 'log_processor.window_size=1',
        'default_hooks.checkpoint.interval=2', 'val_dataloader.dataset.num_samples=501',
        TEST_DIST_TIMEOUT]
PHASES = ('tokenizer/', 'discriminator/', 'prior/', 'grad_norm/')  # grad norms: after reduction


def inputs(pipeline_dir, stage):
    """The cfg-options that point a stage at the pipeline's exports."""
    final = {name: str(pipeline_dir / name / 'final.pth')
             for name in ('stage0_warmup', 'stage1_gear')}
    return {'stage0': [],
            'stage1': [f'model.init_from.0.checkpoint={final["stage0_warmup"]}'],
            'vqonly': [f'model.init_from.0.checkpoint={final["stage1_gear"]}'],
            'arinit': [f'model.init_from.0.checkpoint={final["stage1_gear"]}'],
            'baseline': [f'model.init_from.0.checkpoint={final["stage0_warmup"]}'],
            'stage1_t2i': [f'model.init_from.0.checkpoint={final["stage0_warmup"]}'],
            'vqonly_t2i': [f'model.init_from.0.checkpoint={final["stage1_gear"]}']}[stage]


def argv(config, work_dir, options, *extra):
    return [config, '--work-dir', str(work_dir), '--launcher', 'pytorch', *extra,
            '--cfg-options', *options]


def trajectory_options(pipeline_dir):
    """Each rank loads TRAJ_BATCH / world size (gear/engine/batch.py)."""
    return [*TRAJ, *inputs(pipeline_dir, 'stage1'), f'global_batch_size={TRAJ_BATCH}']


def t2i_trajectory_options(pipeline_dir, t2i_data):
    """The T2I stage 2 (vq-only, the official GPIC recipe's stage) as the trajectory runs:
    caption dropout off with the other dropouts (each rank draws its own)."""
    return [*TRAJ, *inputs(pipeline_dir, 'vqonly_t2i'), *t2i_options(t2i_data),
            f'global_batch_size={TRAJ_BATCH}']


@pytest.fixture(scope='module')
def launched(tmp_path_factory, pipeline_two_procs, t2i_data):
    pytest.importorskip('deepspeed', reason='DeepSpeed is not installed')
    pipeline_dir, _ = pipeline_two_procs
    tmp = tmp_path_factory.mktemp('distributed')
    runs = []
    for stage, (config, strategies) in MATRIX.items():
        for strategy in strategies:
            name = f'{stage}_{strategy}'
            data = t2i_options(t2i_data) if stage in T2I else []
            runs.append(dict(name=name, argv=argv(config, tmp / name, [
                *LENGTH, *inputs(pipeline_dir, stage), *STRATEGIES[strategy], *data])))
    two_ranks = trajectory_options(pipeline_dir) + ['sync_bn=gear']
    runs.append(dict(name='traj_ddp', argv=argv(S1, tmp / 'traj_ddp', two_ranks)))
    runs.append(dict(name='traj_zero2', argv=argv(S1, tmp / 'traj_zero2', [
        *two_ranks, 'deepspeed_cfg.zero_stage=2'])))
    (tmp / 'traj_zero2_resume').mkdir()
    runs.append(dict(name='traj_zero2_resume', copy=[
        [str(tmp / 'traj_zero2' / f), str(tmp / 'traj_zero2_resume' / f)]
        for f in ('iter_2.pth', 'iter_2.deepspeed')],
        argv=argv(S1, tmp / 'traj_zero2_resume', [*two_ranks, 'deepspeed_cfg.zero_stage=2'],
                  '--resume')))
    t2i = t2i_trajectory_options(pipeline_dir, t2i_data)
    runs.append(dict(name='traj_t2i', argv=argv(VQONLY_T2I, tmp / 'traj_t2i', t2i)))
    runs_file = tmp / 'runs.json'
    runs_file.write_text(json.dumps(runs))
    proc = run_tool(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                     'tests/engine/train_many.py', str(runs_file)],
                    timeout=1500, env=DISTRIBUTED_ENV, check=False)
    done = (tmp / 'runs.json.done').read_text().split() if osp.isfile(
        tmp / 'runs.json.done') else []
    if proc.returncode != 0:
        failed = next((r['name'] for r in runs if r['name'] not in done), '?')
        raise AssertionError(f'run {failed} failed (exit {proc.returncode}; done: {done})\n'
                             f'--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n'
                             f'{proc.stderr[-6000:]}')
    # one process, the whole batch: the trajectory the two-process runs must follow. One
    # thread, as each torchrun rank has: with two, float summation order alone moves step 4's
    # GAN logits by 5% (measured; Adam and the GAN amplify 1e-6 differences in two steps)
    run_tool(['tools/train.py', S1, '--work-dir', str(tmp / 'traj_one'), '--cfg-options',
              *trajectory_options(pipeline_dir)], timeout=600,
             env=dict(OMP_NUM_THREADS='1'))
    run_tool(['tools/train.py', VQONLY_T2I, '--work-dir', str(tmp / 'traj_t2i_one'),
              '--cfg-options', *t2i], timeout=600, env=dict(OMP_NUM_THREADS='1'))
    return tmp, pipeline_dir, proc


def state_dict(path, weights_only=True):
    return torch.load(path, map_location='cpu', weights_only=weights_only)['state_dict']


@pytest.mark.parametrize('name', [f'{s}_{k}' for s, (_, ks) in MATRIX.items() for k in ks])
def test_shipped_config_runs_to_the_end(launched, name):
    tmp, pipeline_dir, _ = launched
    stage, strategy = name.rsplit('_', 1)
    work_dir = tmp / name
    final = state_dict(work_dir / 'final.pth')  # a loadable gear weights file
    assert all(torch.isfinite(v).all() for v in final.values() if v.is_floating_point())
    assert osp.isfile(work_dir / 'iter_1.pth') and osp.isfile(work_dir / 'iter_2.pth')
    # the shipped log interval (20) is not reached: step 1's values were flushed (a collective,
    # on both ranks) into the message hub that iter_1.pth saved
    hub = torch.load(work_dir / 'iter_1.pth', map_location='cpu',
                     weights_only=False)['message_hub']['log_scalars']
    loss = 'train/prior/loss' if stage not in GROUPS else 'train/tokenizer/loss'
    assert len(hub[loss].data[0]) == 1, f'{name}: {loss} not saved at step 1'
    # the last step's validation ran after its checkpoint, on both ranks, and was logged
    val = [r for r in scalars(work_dir) if any(k.startswith(('recon/', 'val/')) for k in r)]
    assert val and val[-1]['step'] == 2, f'{name}: no validation logged at step 2'
    reference = {'stage0': 'stage0_warmup', 'stage1': 'stage1_gear', 'vqonly': 'stage2_vqonly',
                 'baseline': 'baseline', 'arinit': 'stage2_vqonly', 'stage1_t2i': 'stage1_gear',
                 'vqonly_t2i': 'stage2_vqonly'}[stage]
    keys = state_dict(pipeline_dir / reference / 'final.pth').keys()
    if stage in T2I:  # the class pipeline's keys, with the caption embedder for the class table
        def body(ks):
            return {k for k in ks if '.cls_embedding.' not in k}
        assert body(final) == body(keys)
        assert 'prior.ar.cls_embedding.cap_proj.fc1.weight' in final
        assert 'prior_ema.module.ar.cls_embedding.null_emb' in final  # the "" null caption
    else:
        assert final.keys() == keys
    if strategy != 'ddp':
        for group in GROUPS.get(stage, ('prior',)):
            shards = glob.glob(str(work_dir / 'iter_2.deepspeed' / group / '*optim_states.pt'))
            assert len(shards) == 2, f'{name} {group}: {shards}'
    if strategy == 'zero3':  # parameters were partitioned: exports gather them whole
        ckpt = state_dict(work_dir / 'iter_2.pth', weights_only=False)
        prior = [k for k in final if k.startswith('prior.')]
        assert prior and all(final[k].numel() > 0 for k in final)
        assert all(torch.equal(final[k], ckpt[k]) for k in prior)
        assert any(not torch.equal(final[k], final['prior_ema.module' + k[len('prior'):]])
                   for k in prior)  # the EMA was updated from whole parameters


def test_arinit_continues_the_stage1_prior(launched):
    """ar-init starts from the stage-1 prior (and vq-only from a fresh one): after its first
    step its prior is close to stage 1's."""
    tmp, pipeline_dir, _ = launched
    stage1 = state_dict(pipeline_dir / 'stage1_gear' / 'final.pth')
    for strategy in MATRIX['arinit'][1]:
        for stage, near in (('arinit', True), ('vqonly', False)):
            if strategy not in MATRIX[stage][1]:
                continue
            first = state_dict(tmp / f'{stage}_{strategy}' / 'iter_1.pth', weights_only=False)
            gap = max((first[k] - stage1[k]).abs().max().item()
                      for k in stage1 if k.startswith('prior.ar.'))
            assert (gap < 0.01) == near, f'{stage}_{strategy}: max |prior - stage 1| = {gap}'


def trajectory(work_dir):
    """step -> {key: value} of the phase losses / metrics logged at that step."""
    return {r['step']: {k: v for k, v in r.items() if k.startswith(PHASES)}
            for r in scalars(work_dir) if 'tokenizer/loss' in r}


def validation(work_dir, step):
    rows = [r for r in scalars(work_dir) if 'recon/l1' in r and r['step'] == step]
    assert len(rows) == 1, f'{work_dir}: no validation at step {step}'
    return {k: v for k, v in rows[0].items() if k.startswith('recon/')}


def assert_close(expected, got, rtol, atol=1e-6):
    assert set(got) == set(expected), f'logged keys differ: {set(got) ^ set(expected)}'
    for key, want in expected.items():
        assert abs(got[key] - want) <= atol + rtol * abs(want), f'{key}: {got[key]} vs {want}'


@pytest.mark.parametrize('strategy', ['ddp', 'zero2'])
def test_two_processes_follow_the_one_process_trajectory(launched, strategy):
    tmp, _, _ = launched
    expected, got = trajectory(tmp / 'traj_one'), trajectory(tmp / f'traj_{strategy}')
    assert sorted(expected) == list(range(1, TRAJ_STEPS + 1)) and sorted(got) == sorted(expected)
    assert 'tokenizer/loss_entropy' in expected[1] and 'discriminator/loss' in expected[1]
    for step in COMPARED_STEPS:
        want = dict(expected[step])
        if strategy != 'ddp':  # DeepSpeed clips inside engine.step and logs no grad norm
            want = {k: v for k, v in want.items() if not k.startswith('grad_norm/')}
        else:
            assert {'grad_norm/tokenizer', 'grad_norm/prior'} <= set(want)
        assert_close(want, got[step], rtol=1e-4)
    # validation after step 2 on 501 images: 251 per rank, rank 1's padded duplicate of image 0
    # dropped by the evaluator
    assert_close(validation(tmp / 'traj_one', 2), validation(tmp / f'traj_{strategy}', 2),
                 rtol=1e-5)


def test_zero2_resume_continues_the_trajectory(launched):
    tmp, _, proc = launched
    assert 'Loaded the DeepSpeed engine shards' in proc.stdout + proc.stderr
    resumed, uninterrupted = trajectory(tmp / 'traj_zero2_resume'), trajectory(tmp / 'traj_zero2')
    assert sorted(resumed) == [3, 4]
    for step in (3, 4):
        assert_close(uninterrupted[step], resumed[step], rtol=1e-6, atol=1e-7)


def test_resume_on_another_number_of_processes(launched, tmp_path):
    """The 2-process DDP run's iter_2.pth resumed by one process (gear/engine/resume_check.py):
    allowed, and step 3 trains on the same images from the same state, so it follows the
    2-process trajectory to the tolerance two processes follow one; the ZeRO-2 run's checkpoint
    resumed without DeepSpeed is refused naming both strategies."""
    import shutil
    tmp, pipeline_dir, _ = launched
    (tmp_path / 'ddp').mkdir()
    shutil.copy(tmp / 'traj_ddp' / 'iter_2.pth', tmp_path / 'ddp' / 'iter_2.pth')
    one = ['tools/train.py', S1, '--resume', '--cfg-options', *trajectory_options(pipeline_dir)]
    proc = run_tool([*one, '--work-dir', str(tmp_path / 'ddp')], env=dict(OMP_NUM_THREADS='1'))
    assert 'written by 2 rank(s), this run has 1' in proc.stdout + proc.stderr
    resumed = trajectory(tmp_path / 'ddp')
    assert sorted(resumed) == [3, 4]
    assert_close(trajectory(tmp / 'traj_ddp')[3], resumed[3], rtol=1e-4)
    (tmp_path / 'zero').mkdir()
    for name in ('iter_2.pth', 'iter_2.deepspeed'):
        copy = shutil.copytree if name.endswith('.deepspeed') else shutil.copy
        copy(tmp / 'traj_zero2' / name, tmp_path / 'zero' / name)
    proc = run_tool([*one, 'deepspeed_cfg.zero_stage=2', '--work-dir', str(tmp_path / 'zero')],
                    check=False)
    assert proc.returncode != 0
    assert 'zero_stage=2' in proc.stderr and 'zero_stage=None' in proc.stderr
    assert not (tmp_path / 'zero' / 'iter_4.pth').exists()


def test_reconstruction_grid_is_rank0s_shard(pipeline_two_procs):
    """Each rank validates its own shard (DefaultSampler: rank r gets images r, r + 2, ...); only
    rank 0 writes the grid, so its input row is test images 0, 2, 4, ..."""
    import numpy as np
    from PIL import Image

    from gear.datasets.fashion_mnist import FashionMNIST
    pipeline_dir, _ = pipeline_two_procs
    grids = sorted(glob.glob(str(pipeline_dir / 'stage0_warmup' / 'vis' / 'recon_iter_*.png')))
    assert grids, 'no reconstruction grid written'
    grid = np.asarray(Image.open(grids[-1]).convert('RGB')).astype(np.float32) / 255  # (H, W, 3)
    test = FashionMNIST(split='test', num_samples=8)
    for col, index in enumerate((0, 2, 4)):  # padding 1: tile c of row 0 at x = 1 + 33 c
        tile = grid[1:33, 1 + 33 * col:33 + 33 * col].transpose(2, 0, 1)  # (3, 32, 32)
        want = ((test[index]['img'] + 1) / 2).numpy()
        assert np.abs(tile - want).max() <= 1 / 255 + 1e-6, f'tile {col} is not test image {index}'


def test_a_nan_stops_every_rank_at_the_same_step(tmp_path, fashion_mnist_root):
    """The non-finite watchdog under DDP: stage 0 at lr=1e9 with policy='skip' (2 skips
    allowed). Both ranks skip the same steps (the norm of the all-reduced gradients), flush at
    once on the third non-finite update and raise the same error at the same step from the
    same all-reduced values: no rank waits in a collective for another (a hang would fail the
    run at the 120 s timeout)."""
    proc = run_tool(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                     'tools/train.py', *argv(S0, tmp_path, [
                         'train_cfg.max_iters=30', 'optim_wrapper.tokenizer.optimizer.lr=1e9',
                         'nonfinite.policy=skip', 'nonfinite.max_consecutive_skips=2',
                         'model.gan_loss.disc_start=1', 'global_batch_size=8',
                         'default_hooks.checkpoint.interval=1', 'train_cfg.val_interval=100',
                         'default_hooks.logger.interval=10', TEST_DIST_TIMEOUT])],
                    env=DISTRIBUTED_ENV, check=False)
    assert proc.returncode != 0
    errors = [line.split('NonFiniteError: ', 1)[1] for line in proc.stderr.splitlines()
              if 'gear.engine.nonfinite.NonFiniteError: ' in line]
    assert len(errors) == 2 and errors[0] == errors[1], errors  # one per rank, the same
    step = int(errors[0].split(':')[0].split()[1])
    assert "the 3rd non-finite update of 'tokenizer' in a row" in errors[0]
    assert osp.isfile(tmp_path / f'nonfinite_iter_{step}.pth')
    assert not osp.exists(tmp_path / 'final.pth')
    assert sorted(glob.glob(str(tmp_path / 'iter_*.pth')))  # the finite, skipped steps' ones


def prior_trajectory(work_dir):
    """step -> the prior's logged losses, metrics and gradient norm (stage 2 logs no other)."""
    return {r['step']: {k: v for k, v in r.items() if k.startswith(('prior/', 'grad_norm/'))}
            for r in scalars(work_dir) if 'prior/loss' in r}


def test_two_processes_follow_one_in_the_t2i_stage(launched):
    """Text-to-image stage 2 as shipped (captions through the frozen T5 encoder and its cache,
    the caption prefix, REPA), dropouts off: 2 x 4 against 1 x 8 captions, step for step."""
    tmp, _, _ = launched
    expected, got = prior_trajectory(tmp / 'traj_t2i_one'), prior_trajectory(tmp / 'traj_t2i')
    assert sorted(expected) == list(range(1, TRAJ_STEPS + 1)) and sorted(got) == sorted(expected)
    assert {'prior/loss_ntp', 'prior/loss_align', 'grad_norm/prior'} <= set(expected[1])
    for step in COMPARED_STEPS:
        assert_close(expected[step], got[step], rtol=1e-4)
    val = {d: [r for r in scalars(tmp / d) if 'val/loss_ntp' in r and r['step'] == 2]
           for d in ('traj_t2i_one', 'traj_t2i')}
    assert len(val['traj_t2i_one']) == 1 and len(val['traj_t2i']) == 1
    assert_close(*[{k: v for k, v in rows[0].items() if k.startswith('val/')}
                   for rows in val.values()], rtol=1e-5)


def test_t2i_evaluation_samples_the_sets_captions_in_order(launched, t2i_data, tiny_clip,
                                                           tmp_path):
    """tools/evaluate_t2i.py: one sample per caption of the first N pairs, in order, FID /
    precision / recall against those images, CLIPScore against the captions; without a CLIP
    model CLIPScore is unavailable with the reason; a class-conditional checkpoint is refused."""
    from gear.datasets import CaptionShards
    tmp, _, _ = launched
    ckpt = tmp / 'vqonly_t2i_ddp' / 'final.pth'
    shards = f'{t2i_data["shards"]}/test-*.tar'
    n = 12

    def evaluate(out, *extra, path=ckpt, check=True):
        return run_tool(['tools/evaluate_t2i.py', str(path), '--shards', shards,
                         '--resolution', '32', '--num-samples', str(n), '--batch-size', '6',
                         '--cache-dir', str(tmp_path / 'fid_cache'), '--no-progress',
                         '--out', str(tmp_path / out / 'results.json'), *extra], check=check)

    evaluate('clip', '--clip-model', tiny_clip)
    res = json.loads((tmp_path / 'clip' / 'results.json').read_text())
    captions = CaptionShards(shards=shards, resolution=32)
    assert res['num_prompts'] == res['num_samples'] == n
    assert res['prompts_first'] == [captions.raw(i)['caption'] for i in range(10)]
    assert np.isfinite(res['fid']) and res['fid'] > 0
    assert 0 <= res['precision'] <= 1 and 0 <= res['recall'] <= 1
    assert 0 <= res['clip_score'] <= 100 and 'clip_score' not in res.get('unavailable', {})
    assert res['text_encoder']['family'] == 't5' and res['shards'] == shards
    assert (tmp_path / 'clip' / 'grid.png').is_file()
    evaluate('no_clip')
    res = json.loads((tmp_path / 'no_clip' / 'results.json').read_text())
    assert 'clip_score' not in res and 'no CLIP model' in res['unavailable']['clip_score']
    assert res['fid'] > 0
    proc = evaluate('class', path=tmp / 'vqonly_zero2' / 'final.pth', check=False)
    assert proc.returncode != 0 and 'class-conditional' in proc.stderr


def test_t2i_samples_from_prompts_with_every_setting_recorded(launched, tmp_path):
    tmp, _, _ = launched
    ckpt = tmp / 'vqonly_t2i_ddp' / 'final.pth'
    prompts = tmp_path / 'prompts.txt'
    prompts.write_text('a photo of a sneaker\n\na grey dress\n')
    outs = []
    for run in ('a', 'b'):
        run_tool(['tools/sample.py', str(ckpt), '--prompts', str(prompts), '--repeats', '3',
                  '--cfg-scale', '4.0', '--top-k', '100', '--batch-size', '4', '--no-progress',
                  '--out', str(tmp_path / run)])
        outs.append(tmp_path / run)
    record = json.loads((outs[0] / 'sampling.json').read_text())
    assert record['num_samples'] == 6 and record['label_mode'] == 'prompts'
    assert record['cfg_scale'] == 4.0 and record['top_k'] == 100 and record['repeats'] == 3
    assert record['text_encoder']['null_caption'] == 'empty'
    assert len(record['text_encoder']['fingerprint']) == 16
    assert json.loads((outs[0] / 'prompts.json').read_text()) == (
        ['a photo of a sneaker'] * 3 + ['a grey dress'] * 3)
    a, b = (np.load(o / 'samples.npz') for o in outs)
    assert a['arr_0'].shape == (6, 32, 32, 3) and 'arr_1' not in a
    assert np.array_equal(a['arr_0'], b['arr_0'])  # the seed schedule fixes every image
    assert (outs[0] / 'grid.png').is_file()
    # a class-conditional checkpoint refuses prompts, naming why
    proc = run_tool(['tools/sample.py', str(tmp / 'vqonly_zero2' / 'final.pth'), '--prompts',
                     str(prompts), '--out', str(tmp_path / 'c')], check=False)
    assert proc.returncode != 0 and 'class-conditional' in proc.stderr
