# Stage 2 "vq-only", reference recipe: a fresh LlamaGen GPT-L (+ REPA, lambda_ar 0.5, D = 8,
# DINOv2 teacher) on the frozen stage-1 EMA tokenizer, tokens encoded online; AdamW 1e-4,
# batch 256, bf16, EMA 0.9999, to 4M steps in total.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/strategies/ddp.py',
    '../_base_/models/vq16.py',
    '../_base_/models/llamagen_gpt_l.py',
    '../_base_/models/frozen_tokenizer_ar.py',
    '../_base_/teachers/dinov2_vitb14.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/schedules/ar.py',
]
_stage1 = 'work_dirs/gear_vq_l_imagenet/final.pth'  # this stage from that stage

model = dict(
    tokenizer={{_base_._tokenizer}},
    init_from=[dict(checkpoint=_stage1, modules={'tokenizer_ema.module': 'tokenizer'})],
    teachers={{_base_._teachers}},
    prior=dict(ar={{_base_._ar}}, align_depth=8),
)
optim_wrapper = dict(prior=dict(type='GearAmpOptimWrapper', dtype='bfloat16', optimizer=dict(type='FusedAdamW')))
