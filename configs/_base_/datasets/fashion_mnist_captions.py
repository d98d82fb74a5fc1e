# Fashion-MNIST as image-caption pairs in WebDataset tar shards: the CPU demo set for
# text-to-image training (60k train / 10k test; captions name only the class, so it tests the
# text-conditioning machinery, not text understanding). Write the shards first (about 25 s on
# one CPU core, 6 + 1 shards, 162 MB):
#   python tools/make_caption_shards.py --fashion-mnist /usr/share/datasets/fashion-mnist \
#       --split train --out data/fashion_mnist_captions/train-%06d.tar --maxcount 10000
#   python tools/make_caption_shards.py --fashion-mnist /usr/share/datasets/fashion-mnist \
#       --split test --out data/fashion_mnist_captions/test-%06d.tar --maxcount 10000
# The images are stored padded to 32 x 32 (2 px of black, as CenterPad), so at resolution 32 the
# default CaptionShards pipeline (ResizeShortSide, SquareCenterCrop, PackGearInputs) leaves the
# pixels exact. Batches are dict(img=(B, 3, 32, 32) in [-1, 1], caption=list of B str).
_shards_root = 'data/fashion_mnist_captions'
_resolution = 32
_val_num_samples = 512  # validation on the first 512 test images keeps CPU evaluation quick
global_batch_size = 32  # per rank: 32 / world size (gear/engine/batch.py); 32 on one CPU process

# uint8 (32, 32, 3) RGB decoded from PNG -> img (3, 32, 32) in [-1, 1], caption (str).
_train_pipeline = [dict(type='ResizeShortSide', interpolation='bicubic'),
                   dict(type='SquareCenterCrop'), dict(type='PackGearInputs')]
_val_pipeline = _train_pipeline  # no randomness: the same steps

# A map-style dataset: InfiniteSampler's shuffle is global over all shards, split over ranks, and
# mmengine's resume lands on the same sample (gear/datasets/caption_shards.py).
train_dataloader = dict(
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CaptionShards', shards=f'{_shards_root}/train-*.tar',
                 resolution=_resolution, caption_key='caption', pipeline=_train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CaptionShards', shards=f'{_shards_root}/test-*.tar',
                 resolution=_resolution, caption_key='caption', num_samples=_val_num_samples,
                 pipeline=_val_pipeline))
test_dataloader = val_dataloader
