# Stage 2 "vq-only", reference recipe: a fresh LlamaGen GPT-L (+ REPA, lambda_ar 0.5, D = 8,
# DINOv2 teacher) on the frozen stage-1 EMA tokenizer, tokens encoded online; AdamW 1e-4,
# batch 256, bf16, EMA 0.9999, to 4M steps in total.
_base_ = ['../_base_/models/vq16.py', '../_base_/recipes/ar_l_imagenet.py']
_stage1 = 'work_dirs/gear_vq_l_imagenet/final.pth'  # this stage from that stage

model = dict(
    tokenizer={{_base_._tokenizer}},
    init_from=[dict(checkpoint=_stage1, modules={'tokenizer_ema.module': 'tokenizer'})])
