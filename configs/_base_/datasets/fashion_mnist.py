# Fashion-MNIST from the Debian package dataset-fashion-mnist (60k train / 10k test, 10 classes),
# padded from 28 to 32 px and repeated to 3 channels.
_data_root = '/usr/share/datasets/fashion-mnist'
_resolution = 32
_val_num_samples = 512  # validation on the first 512 test images keeps CPU evaluation quick
global_batch_size = 32  # per rank: 32 / world size (gear/engine/batch.py); 32 on one CPU process

# uint8 (28, 28) -> 2 px of background on every side (exact) -> img (3, 32, 32) in [-1, 1], label.
# At a resolution other than 32 use [dict(type='TorchResize'), dict(type='PackGearInputs')]
# (28: PackGearInputs alone), or leave `pipeline` out: the dataset then picks by its resolution.
_train_pipeline = [dict(type='CenterPad', pad_val=0), dict(type='PackGearInputs', num_channels=3)]
_val_pipeline = _train_pipeline  # no randomness: the same steps

train_dataloader = dict(
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='FashionMNIST', data_root=_data_root, split='train', resolution=_resolution,
                 pipeline=_train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='FashionMNIST', data_root=_data_root, split='test', resolution=_resolution,
                 num_samples=_val_num_samples, pipeline=_val_pipeline))
test_dataloader = val_dataloader
