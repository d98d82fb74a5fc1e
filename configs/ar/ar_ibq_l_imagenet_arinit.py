# Stage 2 "ar-init", reference recipe (IBQ): continue the stage-1 GPT-L prior (and its EMA) on the
# frozen stage-1 EMA tokenizer.
_base_ = ['./ar_ibq_l_imagenet_vqonly.py']
_stage1 = 'work_dirs/gear_ibq_l_imagenet/final.pth'
model = dict(init_from=[dict(checkpoint=_stage1, modules={
    'tokenizer_ema.module': 'tokenizer', 'prior': 'prior', 'prior_ema': 'prior_ema'})])
