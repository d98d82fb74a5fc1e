# Fashion-MNIST as image-caption pairs in WebDataset tar shards: the CPU demo set for
# text-to-image training (60k train / 10k test; captions name only the class, so it tests the
# text-conditioning machinery, not text understanding). Write the shards first (about 25 s on
# one CPU core, 6 + 1 shards, 162 MB):
#   python tools/make_caption_shards.py --fashion-mnist /usr/share/datasets/fashion-mnist \
#       --split train --out data/fashion_mnist_captions/train-%06d.tar --maxcount 10000
#   python tools/make_caption_shards.py --fashion-mnist /usr/share/datasets/fashion-mnist \
#       --split test --out data/fashion_mnist_captions/test-%06d.tar --maxcount 10000
# The datasets replace those of a Fashion-MNIST recipe, whose loaders (batch size, workers,
# InfiniteSampler, default_collate) stay; a config joins this fragment to a stage and writes
#   train_dataloader = dict(dataset={{_base_._caption_train_dataset}})
#   val_dataloader = dict(dataset={{_base_._caption_val_dataset}})
# A map-style dataset: InfiniteSampler's shuffle is global over all shards, split over ranks, and
# mmengine's resume lands on the same sample (gear/datasets/caption_shards.py).
_caption_shards = 'data/fashion_mnist_captions'
# The images are stored padded to 32 x 32 (2 px of black, as CenterPad), so at resolution 32
# these steps leave the pixels exact: uint8 (32, 32, 3) RGB decoded from PNG -> img (3, 32, 32)
# in [-1, 1], caption (str). No randomness: train and validation share them.
_caption_pipeline = [dict(type='ResizeShortSide', interpolation='bicubic'),
                     dict(type='SquareCenterCrop'), dict(type='PackGearInputs')]
_caption_train_dataset = dict(
    _delete_=True, type='CaptionShards', shards=f'{_caption_shards}/train-*.tar', resolution=32,
    caption_key='caption', pipeline=_caption_pipeline)
_caption_val_dataset = dict(
    _delete_=True, type='CaptionShards', shards=f'{_caption_shards}/test-*.tar', resolution=32,
    caption_key='caption', num_samples=512,  # as the class-conditional validation: 512 images
    pipeline=_caption_pipeline)
# The test loader reads the validation images; a dict of its own, as mmengine pops `_delete_`
# from the dict it merges:   test_dataloader = dict(dataset={{_base_._caption_test_dataset}})
_caption_test_dataset = dict(_caption_val_dataset)
