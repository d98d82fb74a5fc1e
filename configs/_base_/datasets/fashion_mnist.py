# Fashion-MNIST from the Debian package dataset-fashion-mnist (60k train / 10k test, 10 classes),
# padded from 28 to 32 px and repeated to 3 channels.
_data_root = '/usr/share/datasets/fashion-mnist'
_resolution = 32
_val_num_samples = 512  # validation on the first 512 test images keeps CPU evaluation quick
global_batch_size = 32  # per rank: 32 / world size (gear/engine/batch.py); 32 on one CPU process

train_dataloader = dict(
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='FashionMNIST', data_root=_data_root, split='train', resolution=_resolution))
val_dataloader = dict(
    batch_size=64, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='FashionMNIST', data_root=_data_root, split='test', resolution=_resolution,
                 num_samples=_val_num_samples))
test_dataloader = val_dataloader
