# ImageNet-1k in the standard folder layout ({data_root}/{train,val}/{wnid}/*.JPEG), 256 px,
# short-side bicubic resize + random crop + horizontal flip for training (REFERENCE.md).
data_root = 'data/imagenet'
resolution = 256
num_gpus = 8
global_batch_size = 256
train_batch_size = global_batch_size // num_gpus  # per GPU

train_dataloader = dict(
    batch_size=train_batch_size, num_workers=8, pin_memory=True, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetFolder', data_root=data_root, split='train', resolution=resolution))
val_dataloader = dict(
    batch_size=32, num_workers=8, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetFolder', data_root=data_root, split='val', resolution=resolution,
                 random_crop=False, hflip=False, num_samples=10000))
test_dataloader = val_dataloader
