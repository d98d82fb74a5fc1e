# Stage 2 "vqonly" with LlamaGen GPT-XL: D = 12 (REFERENCE.md); stage 1 from gear_vq_xl_imagenet.
_base_ = ['./ar_vq_l_imagenet_vqonly.py']
_stage1 = 'work_dirs/gear_vq_xl_imagenet/final.pth'
model = dict(init_from=[dict(checkpoint=_stage1, modules={'tokenizer_ema.module': 'tokenizer'})], prior=dict(ar=dict(size='XL'), align_depth=12))
