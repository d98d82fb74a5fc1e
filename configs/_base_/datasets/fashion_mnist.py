# Fashion-MNIST from the Debian package dataset-fashion-mnist (60k train / 10k test, 10 classes),
# padded from 28 to 32 px and repeated to 3 channels.
data_root = '/usr/share/datasets/fashion-mnist'
resolution = 32
train_batch_size = 32
val_num_samples = 512  # validation on the first 512 test images keeps CPU evaluation quick

# uint8 (28, 28) -> 2 px of background on every side (exact) -> img (3, 32, 32) in [-1, 1], label.
# At a resolution other than 32 use [dict(type='TorchResize'), dict(type='PackGearInputs')]
# (28: PackGearInputs alone), or leave `pipeline` out: the dataset then picks by its resolution.
train_pipeline = [dict(type='CenterPad', pad_val=0), dict(type='PackGearInputs', num_channels=3)]
val_pipeline = train_pipeline  # no randomness: the same steps

train_dataloader = dict(
    batch_size=train_batch_size, num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='FashionMNIST', data_root=data_root, split='train', resolution=resolution,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='FashionMNIST', data_root=data_root, split='test', resolution=resolution,
                 num_samples=val_num_samples, pipeline=val_pipeline))
test_dataloader = val_dataloader
