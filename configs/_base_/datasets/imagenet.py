# ImageNet-1k in the standard folder layout ({data_root}/{train,val}/{wnid}/*.JPEG), 256 px,
# short-side bicubic resize + random crop + horizontal flip for training (REFERENCE.md).
_data_root = 'data/imagenet'
_resolution = 256
# Sized steps that leave their size out take the dataset's `resolution`, so
# `--cfg-options train_dataloader.dataset.resolution=128` resizes and crops to 128.
# The recipe's global batch (REFERENCE.md, every stage); each rank loads 256 / world size
# (gear/engine/batch.py): 32 on 8 GPUs, 8 on 4 nodes x 8 GPUs.
global_batch_size = 256

_train_pipeline = [
    dict(type='LoadRGBImage'),                                  # PIL decode -> uint8 (H, W, 3)
    dict(type='ResizeShortSide', interpolation='bicubic', backend='pillow'),  # short side -> R
    dict(type='RandomCrop'),                                    # (R, R, 3), torch RNG
    dict(type='RandomHFlip', prob=0.5),                         # torch RNG
    dict(type='PackGearInputs'),                                # img (3, R, R) in [-1, 1], label
]
_val_pipeline = [
    dict(type='LoadRGBImage'),
    dict(type='ResizeShortSide', interpolation='bicubic', backend='pillow'),
    dict(type='SquareCenterCrop'),                              # mmcv CenterCrop to (R, R)
    dict(type='PackGearInputs'),
]

train_dataloader = dict(
    num_workers=8, pin_memory=True, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetFolder', data_root=_data_root, split='train', resolution=_resolution,
                 pipeline=_train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=8, pin_memory=True,  # per rank
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetFolder', data_root=_data_root, split='val', resolution=_resolution,
                 num_samples=10000, pipeline=_val_pipeline))
test_dataloader = val_dataloader
