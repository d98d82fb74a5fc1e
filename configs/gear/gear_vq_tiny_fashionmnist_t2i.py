# Stage 1, GEAR joint, text-to-image, on a laptop CPU: the tiny GEAR run of
# gear_vq_tiny_fashionmnist.py with the AR conditioned on captions instead of classes: a tiny
# frozen T5 encoder's 16 hidden states, projected to a 16-token prefix (the official release's
# bias-free MLP; the null caption is the encoder's "", dropped in with p = 0.1 for CFG).
# Needs the caption shards and the tiny encoder (configs/_base_/datasets/fashion_mnist_captions.py
# and configs/_base_/text_encoders/t5_tiny.py say how to write them):
#   python tools/train.py configs/gear/gear_vq_tiny_fashionmnist_t2i.py
_base_ = ['./gear_vq_tiny_fashionmnist.py', '../_base_/text_encoders/t5_tiny.py']
_shards = 'data/fashion_mnist_captions'

model = dict(
    text_encoder={{_base_._text_encoder}},
    prior=dict(ar=dict(caption_dim={{_base_._caption_dim}},
                       cls_token_num={{_base_._text_encoder.max_length}},
                       null_caption='empty', caption_mlp_bias=False)))
# the same images as Fashion-MNIST, read as (image, caption) pairs from WebDataset shards
train_dataloader = dict(dataset=dict(
    _delete_=True, type='CaptionShards', shards=f'{_shards}/train-*.tar', resolution=32))
val_dataloader = dict(dataset=dict(
    _delete_=True, type='CaptionShards', shards=f'{_shards}/test-*.tar', resolution=32,
    num_samples=512))
test_dataloader = val_dataloader
