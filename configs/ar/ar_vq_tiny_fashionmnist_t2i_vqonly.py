# Stage 2 "vq-only", text-to-image, on a laptop CPU: a fresh caption-conditioned small GPT
# (+ REPA) on the frozen stage-1 GEAR tokenizer of gear_vq_tiny_fashionmnist_t2i.py. As the
# official GPIC recipe (a fresh AR on a frozen tokenizer); compare with the T2I baseline.
_base_ = ['../_base_/models/vq_tiny.py', '../_base_/recipes/ar_tiny_fashionmnist.py',
          '../_base_/text_encoders/t5_tiny.py']
_stage1 = 'work_dirs/gear_vq_tiny_fashionmnist_t2i/final.pth'  # this stage from that stage
_shards = 'data/fashion_mnist_captions'

model = dict(
    tokenizer={{_base_._tokenizer}},
    init_from=[dict(checkpoint=_stage1, modules={'tokenizer_ema.module': 'tokenizer'})],
    text_encoder={{_base_._text_encoder}},
    prior=dict(ar=dict(caption_dim={{_base_._caption_dim}},
                       cls_token_num={{_base_._text_encoder.max_length}},
                       null_caption='empty', caption_mlp_bias=False)))
train_dataloader = dict(dataset=dict(
    _delete_=True, type='CaptionShards', shards=f'{_shards}/train-*.tar', resolution=32))
val_dataloader = dict(dataset=dict(
    _delete_=True, type='CaptionShards', shards=f'{_shards}/test-*.tar', resolution=32,
    num_samples=512))
test_dataloader = val_dataloader
