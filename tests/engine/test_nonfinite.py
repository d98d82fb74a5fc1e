"""The non-finite watchdog on the shipped tiny configs: a NaN stops the run naming the step,
the optimizer group and the term; the state at the stop goes to ``nonfinite_iter_N.pth``; no
``iter_N.pth`` and no ``final.pth`` ever holds a NaN; ``max_keep_ckpts`` keeps the last finite
checkpoint, which ``--resume`` (and so a pipeline rerun) picks; ``policy='skip'`` skips and
counts; ``policy='stop'`` adds no host sync to any step.

NaNs come from the training itself: the tokenizer's learning rate set to 1e9 (its first update,
at the 1e-3 warm-up, leaves finite but huge weights, whose next forward is NaN), or stage 1's
``lambda_ar=inf`` (the prior's alignment term, at step 1). The first run is ``tools/train.py``
as a user types it; the others call the same entry (``gear.train``) in this process, which
saves the ~7 s of imports each.
"""
import glob
import importlib.util
import json
import os.path as osp
import re

import pytest
import torch

from gear.engine import check_config
from gear.engine.nonfinite import NonFiniteError
from gear.engine.runner import find_latest_checkpoint
from gear.pipeline.chain import _check_stage, load_pipeline
from gear.registry import RUNNERS
from gear.train import build_parser, load_config, main

from ..conftest import PIPELINE, REPO, run_tool
from .test_log_sync import StepMarker, SyncCounter

S0 = 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'
S1 = 'configs/gear/gear_vq_tiny_fashionmnist.py'
FAST = ['global_batch_size=8', 'val_dataloader.dataset.num_samples=16',
        'val_dataloader.batch_size=16', 'train_cfg.val_interval=100']
BAD_LR = 'optim_wrapper.tokenizer.optimizer.lr=1e9'
# a checkpoint every step, only the newest kept, a log window of 5 steps: the NaN step's values
# are first fetched by the flush before its checkpoint, after the rotation chose what to delete
ROTATE = ['default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=1',
          'default_hooks.logger.interval=5']


def runner_for(config, work_dir, *options):
    """The runner ``gear.train.main`` builds for this command line."""
    args = build_parser().parse_args([config, '--work-dir', str(work_dir), '--cfg-options',
                                      *FAST, *options])
    cfg = load_config(args)
    check_config(cfg)
    return RUNNERS.build(cfg)


def finite(path) -> bool:
    state = torch.load(path, map_location='cpu', weights_only=False)['state_dict']
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def iter_checkpoints(work_dir):
    return sorted(int(m.group(1)) for p in glob.glob(str(work_dir / '*.pth'))
                  if (m := re.fullmatch(r'iter_(\d+)\.pth', osp.basename(p))))


@pytest.fixture(scope='module')
def stopped(tmp_path_factory, fashion_mnist_root):
    """``tools/train.py`` stage 0 at lr=1e9, in the work dir the tiny pipeline gives stage 0."""
    root = tmp_path_factory.mktemp('pipeline')
    work_dir = root / 'stage0_warmup'
    proc = run_tool(['tools/train.py', S0, '--work-dir', str(work_dir), '--cfg-options', *FAST,
                     BAD_LR, 'train_cfg.max_iters=30', *ROTATE], check=False)
    return root, work_dir, proc


def test_a_nan_stops_the_run_naming_step_group_and_term(stopped):
    root, work_dir, proc = stopped
    assert proc.returncode != 0
    err = proc.stderr
    m = re.search(r"NonFiniteError: step (\d+): (tokenizer/loss\w*) is nan "
                  r"\(optimizer group 'tokenizer'\)", err)
    assert m, err[-3000:]
    bad = int(m.group(1))
    assert bad >= 2  # step 1 is finite: its update made the weights huge, not NaN
    # stopped at the flush before the NaN step's checkpoint: the state after that step
    debug = work_dir / f'nonfinite_iter_{bad}.pth'
    assert (f'The state at the stop (step {bad}, after the first bad step {bad}) is in '
            f'{debug}') in err
    assert osp.isfile(debug) and not finite(debug)
    assert torch.load(debug, weights_only=False)['meta']['iter'] == bad
    assert not osp.exists(work_dir / 'final.pth')
    # no NaN iter_N.pth; the rotation (max_keep_ckpts=1) did not delete the last finite one
    assert iter_checkpoints(work_dir) == [bad - 1] and finite(work_dir / f'iter_{bad - 1}.pth')
    last = str(work_dir / f'iter_{bad - 1}.pth')
    assert f'Last finite checkpoint: {last} (--resume continues from it)' in err
    assert find_latest_checkpoint(str(work_dir)) == last
    assert (work_dir / 'last_checkpoint').read_text().strip() == last


def test_the_failed_stage_is_not_done_and_a_rerun_resumes_the_last_finite(stopped):
    root, work_dir, proc = stopped
    pipeline = load_pipeline(PIPELINE, work_dir=str(root))
    stage = pipeline.stages[0]
    assert stage.name == 'stage0_warmup' and not pipeline.is_complete(stage.name)
    with pytest.raises(RuntimeError, match='stage stage0_warmup failed'):
        _check_stage(pipeline, stage, proc.returncode)
    last = iter_checkpoints(work_dir)[-1]
    # the command a pipeline rerun runs (--resume), ending at the last finite step: it resumes
    # from iter_{last} and exports it (resuming the NaN state would refuse the export)
    main(pipeline.train_args(stage, dict(o.split('=', 1) for o in
                                         FAST + [f'train_cfg.max_iters={last}'])))
    log = sorted(glob.glob(str(work_dir / '*' / '*.log')))[-1]
    with open(log) as f:
        assert f'Resuming from the latest checkpoint {work_dir}/iter_{last}.pth' in f.read()
    assert pipeline.is_complete(stage.name) and finite(work_dir / 'final.pth')


def test_a_nonfinite_state_is_never_saved_nor_exported(tmp_path, fashion_mnist_root):
    """Watchdog off (nonfinite=None): the NaN reaches the weights, and the checkpoint of that
    step is refused, after the rotation had chosen to delete the last finite one."""
    runner = runner_for(S0, tmp_path, BAD_LR, 'nonfinite=None', 'train_cfg.max_iters=30',
                        *ROTATE)
    with pytest.raises(NonFiniteError) as e:
        runner.train()
    step = e.value.step
    assert str(e.value).startswith(f'step {step}: checkpoint {tmp_path}/iter_{step}.pth not '
                                   'written: the model state is not finite: ')
    assert re.search(r'not finite: \S+ has \d+ nan and \d+ inf of \d+ values', str(e.value))
    assert iter_checkpoints(tmp_path) == [step - 1] and finite(tmp_path / f'iter_{step - 1}.pth')
    assert osp.isfile(tmp_path / f'nonfinite_iter_{step}.pth')
    # the export of the same NaN model is refused too, naming the first NaN tensor
    export = next(h for h in runner.hooks if type(h).__name__ == 'ExportWeightsHook')
    name = e.value.key
    with pytest.raises(NonFiniteError, match=rf'final\.pth not written: .*: {re.escape(name)} has'):
        export.after_train(runner)
    assert not osp.exists(tmp_path / 'final.pth')


def test_stage1_names_the_prior_group(sync_runs, tmp_path):
    """GEAR's prior alignment term made infinite: the prior group, at step 1, is named; the
    log window (4 steps) ends at step 4, the state at the stop. The prior has no clip_grad
    here: its gradient norm is computed for the watchdog all the same."""
    final = sync_runs['nonfinite.policy=stop'][1] / 'final.pth'  # a finite stage-0 export
    with pytest.raises(NonFiniteError) as e:
        main([S1, '--work-dir', str(tmp_path), '--cfg-options', *FAST,
              f'model.init_from.0.checkpoint={final}', 'model.lambda_ar=inf',
              'optim_wrapper.prior.clip_grad=None',
              'train_cfg.max_iters=8', 'default_hooks.logger.interval=4',
              'default_hooks.checkpoint.interval=100'])
    err = e.value
    assert (err.step, err.group, err.key, err.stop_step) == (1, 'prior', 'prior/loss_align', 4)
    assert str(err).startswith("step 1: prior/loss_align is inf (optimizer group 'prior'); "
                               'also non-finite at step 1: prior/loss, grad_norm/prior.')
    assert '(step 4, after the first bad step 1)' in str(err)
    assert err.checkpoint == str(tmp_path / 'nonfinite_iter_4.pth') and osp.isfile(err.checkpoint)
    assert err.last_finite is None and 'No finite checkpoint was written before it' in str(err)


def test_skip_policy_skips_counts_and_stops_after_n_in_a_row(tmp_path, fashion_mnist_root):
    with pytest.raises(NonFiniteError) as e:
        main([S0, '--work-dir', str(tmp_path), '--cfg-options', *FAST, BAD_LR,
              'nonfinite.policy=skip', 'nonfinite.max_consecutive_skips=2',
              'train_cfg.max_iters=30', 'default_hooks.checkpoint.interval=1',
              'default_hooks.checkpoint.max_keep_ckpts=3', 'default_hooks.logger.interval=10',
              'model.gan_loss.disc_start=1'])
    bad = e.value.step  # the third non-finite update in a row, not skipped: stops at once
    assert e.value.stop_step == bad and e.value.group == 'tokenizer'
    assert ("the 3rd non-finite update of 'tokenizer' in a row, after 2 skipped "
            '(nonfinite.max_consecutive_skips=2)') in str(e.value)
    first = bad - 2  # the first non-finite step, skipped
    debug = torch.load(tmp_path / f'nonfinite_iter_{bad}.pth', weights_only=False)
    hub = debug['message_hub']['log_scalars']
    for group in ('tokenizer', 'discriminator'):  # x_hat is NaN: D's update is skipped too
        counts = hub[f'train/nonfinite_skips/{group}'].data[0].tolist()
        assert counts == [0] * (first - 1) + [1, 2, 2], group
    # skipped updates left the weights and D's BatchNorm statistics as they were (finite: the
    # checkpoints of the skipped steps were written); the EMA was updated at every step
    assert iter_checkpoints(tmp_path) == [first - 1, first, first + 1]
    before = torch.load(tmp_path / f'iter_{first - 1}.pth', weights_only=False)['state_dict']
    kept = [k for k, v in before.items() if v.is_floating_point()
            and k.startswith(('tokenizer.', 'discriminator.'))]
    assert any('running_mean' in k for k in kept)
    for key in kept:
        assert torch.equal(debug['state_dict'][key], before[key]), key
    assert debug['state_dict']['tokenizer_ema.steps'] == before['tokenizer_ema.steps'] + 3


@pytest.fixture(scope='module')
def sync_runs(tmp_path_factory, fashion_mnist_root):
    """Stage 0 for 4 steps (GAN on, a log flush every 2 steps, the last checkpoint), watchdog
    on ('stop') and off: {option: (every tensor -> Python conversion as (step, name), work dir)}."""
    runs = {}
    for policy in ('nonfinite.policy=stop', 'nonfinite=None'):
        work_dir = tmp_path_factory.mktemp('sync')
        runner = runner_for(S0, work_dir, policy, 'train_cfg.max_iters=4',
                            'default_hooks.logger.interval=2', 'model.gan_loss.disc_start=1',
                            'default_hooks.checkpoint.interval=100')
        counter = SyncCounter()
        runner.register_hook(StepMarker(counter))
        with counter:
            runner.train()
        runs[policy] = (sorted(counter.calls), work_dir)
    return runs


def test_the_stop_policy_adds_no_host_sync(sync_runs):
    """The same conversions at every step with the watchdog on and off, log flushes and the
    checkpoint included: the checks read the values the flush fetched anyway."""
    (on, _), (off, _) = sync_runs.values()
    assert {step for step, _ in on} >= {0, 1, 2, 3}  # the counter saw every step
    assert on == off


def test_benchmark_watchdog_alternates_the_modes_in_one_run(tmp_path, fashion_mnist_root):
    """tools/benchmark_watchdog.py: blocks of steps alternate on / off; medians and ratio."""
    spec = importlib.util.spec_from_file_location('benchmark_watchdog',
                                                  osp.join(REPO, 'tools/benchmark_watchdog.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'watchdog.json'
    tool.main([S0, '--steps', '4', '--block', '1', '--work-dir', str(tmp_path), '--out', str(out),
               '--cfg-options', 'global_batch_size=8'])
    result = json.loads(out.read_text())
    assert [(b['mode'], b['watchdog']) for b in result['blocks']] == [
        ('on', 'stop'), ('off', None), ('on', 'stop'), ('off', None)]
    assert result['policy'] == {'policy': 'stop'} and result['warmup_steps'] == 1
    on, off = result['median_seconds_per_step'].values()
    assert result['ratio'] == pytest.approx(on / off) and on > 0 and off > 0
