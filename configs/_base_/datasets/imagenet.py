# ImageNet-1k in the standard folder layout ({data_root}/{train,val}/{wnid}/*.JPEG), 256 px,
# short-side bicubic resize + random crop + horizontal flip for training (REFERENCE.md).
# Sized steps that leave their size out take the dataset's `resolution`, so
# `--cfg-options train_dataloader.dataset.resolution=128` resizes and crops to 128.
data_root = 'data/imagenet'
resolution = 256
num_gpus = 8
global_batch_size = 256
train_batch_size = global_batch_size // num_gpus  # per GPU

train_pipeline = [
    dict(type='LoadRGBImage'),                                  # PIL decode -> uint8 (H, W, 3)
    dict(type='ResizeShortSide', interpolation='bicubic', backend='pillow'),  # short side -> R
    dict(type='RandomCrop'),                                    # (R, R, 3), torch RNG
    dict(type='RandomHFlip', prob=0.5),                         # torch RNG
    dict(type='PackGearInputs'),                                # img (3, R, R) in [-1, 1], label
]
val_pipeline = [
    dict(type='LoadRGBImage'),
    dict(type='ResizeShortSide', interpolation='bicubic', backend='pillow'),
    dict(type='SquareCenterCrop'),                              # mmcv CenterCrop to (R, R)
    dict(type='PackGearInputs'),
]

train_dataloader = dict(
    batch_size=train_batch_size, num_workers=8, pin_memory=True, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetFolder', data_root=data_root, split='train', resolution=resolution,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=8, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetFolder', data_root=data_root, split='val', resolution=resolution,
                 num_samples=10000, pipeline=val_pipeline))
test_dataloader = val_dataloader
