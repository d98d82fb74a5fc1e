# Stage 2 "arinit" with LlamaGen GPT-XL: D = 12 (REFERENCE.md); stage 1 from gear_vq_xl_imagenet.
# From the GPT-L vq-only recipe, as ar_vq_l_imagenet_arinit.py is (one link: at most 3 levels).
_base_ = ['./ar_vq_l_imagenet_vqonly.py']
_stage1 = 'work_dirs/gear_vq_xl_imagenet/final.pth'
model = dict(init_from=[dict(checkpoint=_stage1, modules={
    'tokenizer_ema.module': 'tokenizer', 'prior': 'prior', 'prior_ema': 'prior_ema'})],
             prior=dict(ar=dict(size='XL'), align_depth=12))
