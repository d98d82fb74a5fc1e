# Stage 2 "ar-init" (LFQ): continue the stage-1 prior (and its EMA) on the frozen stage-1 EMA tokenizer.
_base_ = ['./ar_lfq_tiny_fashionmnist_vqonly.py']
_stage1 = 'work_dirs/gear_lfq_tiny_fashionmnist/final.pth'

model = dict(init_from=[dict(checkpoint=_stage1, modules={
    'tokenizer_ema.module': 'tokenizer', 'prior': 'prior', 'prior_ema': 'prior_ema'})])
