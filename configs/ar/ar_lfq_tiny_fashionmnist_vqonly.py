# Stage 2 "vq-only" on a laptop CPU: a fresh small GPT (+ REPA) on the frozen stage-1 GEAR LFQ
# tokenizer (its EMA weights), tokens encoded online.
_base_ = ['../_base_/models/lfq_tiny.py', '../_base_/recipes/ar_tiny_fashionmnist.py']
_stage1 = 'work_dirs/gear_lfq_tiny_fashionmnist/final.pth'  # this stage from that stage

model = dict(
    tokenizer={{_base_._tokenizer}},
    init_from=[dict(checkpoint=_stage1, modules={'tokenizer_ema.module': 'tokenizer'})])
