"""tools/train.py end to end on real Fashion-MNIST: outputs, resume, and errors before training."""
import glob
import os
import os.path as osp
import re

import pytest
import torch

from gear.engine.hooks.progress import read_progress
from gear.engine.runner import find_latest_checkpoint

from ..conftest import run_tool, scalars

CONFIG = 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'
FAST = ['global_batch_size=8', 'val_dataloader.dataset.num_samples=16',
        'val_dataloader.batch_size=16', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
        'log_processor.window_size=1', 'model.gan_loss.disc_start=1']


def train(work_dir, max_iters, *args, options=(), check=True):
    return run_tool(['tools/train.py', CONFIG, '--work-dir', str(work_dir), *args, '--cfg-options',
                     f'train_cfg.max_iters={max_iters}', *FAST, *options], check=check)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, fashion_mnist_root):
    work_dir = tmp_path_factory.mktemp('stage0')
    train(work_dir, 4)
    return work_dir


def test_run_writes_checkpoints_scalars_and_reconstructions(trained):
    assert osp.isfile(trained / 'iter_2.pth') and osp.isfile(trained / 'iter_4.pth')
    ckpt = torch.load(trained / 'iter_4.pth', weights_only=False)
    assert ckpt['meta']['iter'] == 4
    assert {'tokenizer', 'discriminator'} <= set(ckpt['optimizer'])
    assert {'tokenizer', 'discriminator'} <= set(ckpt['param_schedulers'])
    assert 'rng_state' in ckpt and {'python', 'numpy', 'torch'} <= set(ckpt['rng_state'])
    keys = ckpt['state_dict'].keys()
    assert any(k.startswith('tokenizer_ema.module.') for k in keys)
    assert any(k.startswith('discriminator.') for k in keys)
    assert not any(k.startswith('perceptual_loss.') for k in keys)  # frozen net not saved
    rows = scalars(trained)
    train_rows = [r for r in rows if 'tokenizer/loss_recon' in r]
    assert [r['step'] for r in train_rows] == [1, 2, 3, 4]
    assert 'codebook/tokenizer/usage' in train_rows[-1]
    assert 'discriminator/loss' in train_rows[-1]  # disc_start=1: the GAN phase ran
    val_rows = [r for r in rows if 'recon/psnr' in r]
    assert [r['step'] for r in val_rows] == [0, 2, 4]  # step 0 from ValidateAtStartHook
    pngs = sorted(osp.basename(p) for p in glob.glob(str(trained / 'vis' / '*.png')))
    assert pngs == ['recon_iter_0000000.png', 'recon_iter_0000002.png', 'recon_iter_0000004.png']
    assert glob.glob(str(trained / '*' / 'vis_data' / 'events.out.tfevents.*'))
    progress = read_progress(str(trained))  # ProgressHook's progress.json, after the last step
    assert (progress['iter'], progress['max_iters'], progress['start_iter']) == (4, 4, 0)
    assert progress['done'] and progress['eta'] == 0
    assert 0 < 3 * progress['sec_per_iter'] < progress['elapsed']  # steps 2-4 within the run


def test_the_shipped_config_raises_no_codebook_collapse_alarm(trained):
    log = sorted(glob.glob(str(trained / '*' / '*.log')))[0]  # the first run's
    with open(log) as f:
        text = f.read()
    assert 'codebook/tokenizer/usage' in text and 'codebook collapse' not in text


def test_resume_continues_with_the_step_count_intact(trained):
    from gear.pipeline.chain import Pipeline, Stage
    from gear.pipeline.progress import StageProgress
    lines = []
    watch = StageProgress(Pipeline(str(trained.parent), [Stage(trained.name, CONFIG)]),
                          [Stage(trained.name, CONFIG)], log=lines.append)
    watch.start(trained.name)
    assert watch.progress(trained.name) is None  # the first run's file: older than this launch
    proc = train(trained, 6, '--resume')
    assert 'iter_4.pth' in proc.stdout + proc.stderr
    ckpt = torch.load(trained / 'iter_6.pth', weights_only=False)
    assert ckpt['meta']['iter'] == 6
    steps = [r['step'] for r in scalars(trained) if 'tokenizer/loss_recon' in r]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps 1-4 from the first run, 5-6 resumed, none twice
    # the progress counts from the resumed step, and the pipeline reads it so
    progress = read_progress(str(trained))
    assert (progress['iter'], progress['max_iters'], progress['start_iter']) == (6, 6, 4)
    assert progress['done'] and progress['sec_per_iter'] > 0
    assert watch.status(trained.name, watch.progress(trained.name)).startswith(
        'iter 6/6 (100%, resumed at 4), finishing, elapsed ')
    watch.finish(trained.name)
    assert re.fullmatch(rf'\[pipeline\] stage 1/1 {trained.name}: done in \d+s, iter 6/6, '
                        r'pipeline ETA ~0s', lines[-1]), lines


def test_checkpoint_of_another_model_fails_naming_keys(trained, tmp_path):
    ckpt = find_latest_checkpoint(str(trained))
    proc = train(tmp_path, 2, '--resume', ckpt, options=['model.tokenizer.z_channels=16'],
                 check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert f'{ckpt} does not match' in err and 'shape mismatches' in err
    assert 'tokenizer.encoder.conv_out.weight' in err
    assert not glob.glob(str(tmp_path / '*.pth'))  # nothing trained, nothing written


def test_config_error_exits_before_training_naming_the_key(tmp_path):
    proc = train(tmp_path, 2, options=['model.tokenizer.quantizer.type=VectorQuantiser'],
                 check=False)
    assert proc.returncode != 0
    assert 'model.tokenizer.quantizer.type' in proc.stderr and 'VectorQuantizer' in proc.stderr
    assert not osp.exists(tmp_path / 'iter_2.pth')


def test_missing_data_names_the_path(tmp_path):
    proc = train(tmp_path, 2, options=['train_dataloader.dataset.data_root=/nonexistent/fmnist'],
                 check=False)
    assert proc.returncode != 0
    assert '/nonexistent/fmnist' in proc.stderr and 'dataset-fashion-mnist' in proc.stderr


def test_truncated_data_fails_before_the_first_step_naming_the_file(tmp_path, fashion_mnist_root):
    """The real train images, cut short (an interrupted copy): the dataset reads and checks the
    whole file when it is built, so the run stops before step 1, naming the file."""
    data = tmp_path / 'fashion-mnist'
    data.mkdir()
    for name in os.listdir(fashion_mnist_root):
        (data / name).symlink_to(osp.join(fashion_mnist_root, name))
    bad = data / 'train-images-idx3-ubyte.gz'
    full = bad.read_bytes()
    bad.unlink()
    bad.write_bytes(full[:len(full) // 2])
    work_dir = tmp_path / 'work'
    proc = train(work_dir, 2, options=[f'train_dataloader.dataset.data_root={data}',
                                       f'val_dataloader.dataset.data_root={data}'], check=False)
    assert proc.returncode != 0
    assert f'corrupt idx file {bad}: cannot decompress/read it' in proc.stderr
    assert not glob.glob(str(work_dir / '*.pth'))
    assert not [r for r in scalars(work_dir) if 'step' in r]  # no step, no validation either


def test_stage1_resume_does_not_need_the_stage0_file(trained, tmp_path):
    """``init_from`` runs when a stage starts, not when it resumes: stage 0's file may be gone."""
    stage0 = tmp_path / 'stage0_final.pth'
    stage0.write_bytes((trained / 'final.pth').read_bytes())
    work_dir = tmp_path / 'stage1'
    gear = ['tools/train.py', 'configs/gear/gear_vq_tiny_fashionmnist.py', '--work-dir', str(work_dir)]
    options = [*FAST, f'model.init_from.0.checkpoint={stage0}']
    first = run_tool([*gear, '--cfg-options', 'train_cfg.max_iters=2', *options])
    assert "init_from: ['tokenizer', 'tokenizer_ema', 'discriminator']" in first.stdout + first.stderr
    stage0.unlink()
    resumed = run_tool([*gear, '--resume', '--cfg-options', 'train_cfg.max_iters=3', *options])
    assert 'init_from skipped' in resumed.stdout + resumed.stderr
    assert [r['step'] for r in scalars(work_dir) if 'prior/loss_ntp' in r] == [1, 2, 3]


def test_final_weights_record_the_dataset_configs(trained, fashion_mnist_root):
    """``final.pth`` names the datasets it was trained on: evaluation's default reference."""
    arch = torch.load(trained / 'final.pth', weights_only=True)['arch']
    assert arch['data']['train']['split'] == 'train' and arch['data']['val']['split'] == 'test'
    assert arch['data']['val']['type'] == 'FashionMNIST'
    assert arch['data']['val']['data_root'] == fashion_mnist_root


CLOSES = '''
import sys
import torch.distributed as dist
import gear.train
if sys.argv[1] == 'caller':  # a group made before the run is the caller's to close
    dist.init_process_group('gloo')
gear.train.main(sys.argv[2:])
print('group after the run:', dist.is_initialized())
'''


@pytest.mark.parametrize('made_by, left', [('run', False), ('caller', True)])
def test_a_run_closes_the_process_group_it_made_only(tmp_path, fashion_mnist_root, made_by, left):
    """Under a launcher the run destroys its process group (and its gloo subgroups) once every
    rank is done, not in interpreter finalization; a group the caller made stays open."""
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(port))
    proc = run_tool(['-c', CLOSES, made_by, CONFIG, '--work-dir', str(tmp_path), '--launcher',
                     'pytorch', '--cfg-options', 'train_cfg.max_iters=1', *FAST], env=env)
    assert f'group after the run: {left}' in proc.stdout, proc.stdout[-2000:]
    assert osp.isfile(tmp_path / 'final.pth')
