# Baseline LlamaGen-REPA with LlamaGen GPT-XL: D = 12, on the frozen stage-0 EMA tokenizer.
# From the GPT-L vq-only recipe, as baseline_vq_l_imagenet.py is (one link: at most 3 levels).
_base_ = ['./ar_vq_l_imagenet_vqonly.py']
_stage0 = 'work_dirs/tokenizer_vq16_imagenet/final.pth'
model = dict(init_from=[dict(checkpoint=_stage0, modules={'tokenizer_ema.module': 'tokenizer'})],
             prior=dict(ar=dict(size='XL'), align_depth=12))
