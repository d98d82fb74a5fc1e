"""The reference ImageNet recipes build at full size and run a real step on CPU, so they cannot
rot, with their own bf16 optimizer wrappers (``GearAmpOptimWrapper`` autocasts on a CPU too) and
``FusedAdamW`` (foreach on a CPU). Reduced: batch, resolution (64 px: 4x4 tokens), random teacher
weights of the real DINOv2 architecture (no hub here), ST-LPIPS instead of LPIPS-VGG (no ImageNet
VGG here), no earlier-stage checkpoint, and no checkpoint written (GBs at full size); data are
real ImageNet photos in the ImageNet layout."""
import glob
import json
import math
import os.path as osp

import pytest

from ..conftest import run_tool

CPU_OVERRIDES = [
    'global_batch_size=2', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False', 'train_dataloader.pin_memory=False',
    'train_dataloader.dataset.resolution=64',
    'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
    'test_cfg=None', 'test_dataloader=None', 'test_evaluator=None',
    'train_cfg.max_iters=1', 'default_hooks.logger.interval=1',
    'model.prior.ar.block_size=16',  # 64 px / 16 = 4x4 tokens
    'model.teachers.dinov2.pretrained_source=none', 'model.teachers.dinov2.image_size=56',
    'model.teachers.dinov2.grid_size=4',
]


NO_SAVE_CHILD = """_base_ = [{base!r}]
# A full-size checkpoint is GBs (GEAR-L with optimizers and EMA: 10 GB); saving is tested at tiny size.
default_hooks = dict(checkpoint=None, export_weights=None)
custom_hooks = []
"""


def no_save_child(config, tmp_path) -> str:
    """A config inheriting ``config`` that writes no checkpoint and exports no weights."""
    path = tmp_path / ('cpu_' + osp.basename(config))
    path.write_text(NO_SAVE_CHILD.format(base=osp.abspath(config)))
    return str(path)


def one_step(config, work_dir, data_root, extra):
    run_tool(['tools/train.py', config, '--work-dir', str(work_dir), '--cfg-options',
              f'train_dataloader.dataset.data_root={data_root}', *CPU_OVERRIDES, *extra],
             timeout=900)
    (path,) = glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize('size', ['l'])
def test_gear_imagenet_recipe_runs_a_step(size, tmp_path, imagenet_layout):
    config = no_save_child(f'configs/gear/gear_vq_{size}_imagenet.py', tmp_path)
    rows = one_step(config, tmp_path / 'run', imagenet_layout, [
        'model.init_from=None', 'model.perceptual_loss.type=STLPIPS',
        'model.perceptual_loss.net=alex'])
    row = rows[-1]
    assert row['step'] == 1
    for key in ('tokenizer/loss_align_soft', 'discriminator/loss'):
        assert math.isfinite(row[key]), key
    # a fresh AR has a zero output head (LlamaGen's init): its first NTP loss is exactly that
    # of the uniform distribution over the 16384 codes, whatever the tokens
    assert row['prior/loss_ntp'] == pytest.approx(math.log(16384), rel=1e-5)


def test_baseline_imagenet_recipe_runs_a_step(tmp_path, imagenet_layout):
    # the frozen tokenizer: VQ-16 weights of random values in the released key layout
    import torch

    from gear.models.converters.llamagen_vq import VQ16_ARCH, to_llamagen_vq
    from gear.models.tokenizers import VQTokenizer

    released = to_llamagen_vq(VQTokenizer(**VQ16_ARCH).state_dict())
    path = tmp_path / 'vq_ds16_c2i.pt'
    torch.save({'model': released}, path)
    config = no_save_child('configs/ar/baseline_vq_l_imagenet.py', tmp_path)
    rows = one_step(config, tmp_path / 'run', imagenet_layout, [
        f'model.init_from.0.checkpoint={path}', 'model.init_from.0.modules=tokenizer:tokenizer'])
    assert rows[-1]['step'] == 1 and 'prior/loss_ntp' in rows[-1]
