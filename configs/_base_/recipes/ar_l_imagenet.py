# Stage 2 / baseline, reference recipe, any quantizer family: a fresh LlamaGen GPT-L (+ REPA,
# lambda_ar 0.5, D = 8, DINOv2 teacher) on a frozen tokenizer, tokens encoded online; AdamW 1e-4,
# batch 256, bf16, EMA 0.9999, to 4M steps in total. A config adds the tokenizer fragment and
# the link to the stage whose tokenizer it reads.
_base_ = [
    '../default_runtime.py',
    '../strategies/ddp.py',
    '../models/llamagen_gpt_l.py',
    '../models/frozen_tokenizer_ar.py',
    '../teachers/dinov2_vitb14.py',
    '../datasets/imagenet.py',
    '../schedules/ar.py',
]

model = dict(
    teachers={{_base_._teachers}},
    prior=dict(ar={{_base_._ar}}, align_depth=8),
)
optim_wrapper = dict(prior=dict(type='GearAmpOptimWrapper', dtype='bfloat16', optimizer=dict(type='FusedAdamW')))
