# Stage 2 "vq-only", reference recipe: a fresh LlamaGen GPT-L (+ REPA, lambda_ar 0.5, D = 8,
# DINOv2 teacher) on the frozen stage-1 EMA Open-MAGVIT2 LFQ-16 tokenizer, tokens encoded online.
_base_ = ['../_base_/models/lfq16.py', '../_base_/recipes/ar_l_imagenet.py']
_stage1 = 'work_dirs/gear_lfq_l_imagenet/final.pth'  # this stage from that stage

model = dict(
    tokenizer={{_base_._tokenizer}},
    init_from=[dict(checkpoint=_stage1, modules={'tokenizer_ema.module': 'tokenizer'})])
