# Stage 2 "vq-only", text-to-image, on a laptop CPU: a fresh caption-conditioned small GPT
# (+ REPA) on the frozen stage-1 GEAR tokenizer of gear_vq_tiny_fashionmnist_t2i.py. As the
# official GPIC recipe (a fresh AR on a frozen tokenizer); compare with the T2I baseline.
_base_ = ['../_base_/models/vq_tiny.py', '../_base_/recipes/ar_tiny_fashionmnist.py',
          '../_base_/text_encoders/t5_tiny.py', '../_base_/datasets/fashion_mnist_captions.py']
_stage1 = 'work_dirs/gear_vq_tiny_fashionmnist_t2i/final.pth'  # this stage from that stage

model = dict(
    tokenizer={{_base_._tokenizer}},
    init_from=[dict(checkpoint=_stage1, modules={'tokenizer_ema.module': 'tokenizer'})],
    text_encoder={{_base_._text_encoder}},
    prior=dict(ar={{_base_._caption_ar}}))
train_dataloader = dict(dataset={{_base_._caption_train_dataset}})
val_dataloader = dict(dataset={{_base_._caption_val_dataset}})
test_dataloader = dict(dataset={{_base_._caption_test_dataset}})
