# ImageNet-1k in the standard folder layout ({data_root}/{train,val}/{wnid}/*.JPEG), 256 px,
# short-side bicubic resize + random crop + horizontal flip for training (REFERENCE.md).
_data_root = 'data/imagenet'
_resolution = 256
# The recipe's global batch (REFERENCE.md, every stage); each rank loads 256 / world size
# (gear/engine/batch.py): 32 on 8 GPUs, 8 on 4 nodes x 8 GPUs.
global_batch_size = 256

train_dataloader = dict(
    num_workers=8, pin_memory=True, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetFolder', data_root=_data_root, split='train', resolution=_resolution))
val_dataloader = dict(
    batch_size=32, num_workers=8, pin_memory=True,  # per rank
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetFolder', data_root=_data_root, split='val', resolution=_resolution,
                 random_crop=False, hflip=False, num_samples=10000))
test_dataloader = val_dataloader
