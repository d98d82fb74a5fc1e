# Baseline LlamaGen-REPA with LlamaGen GPT-XL: D = 12, on the frozen stage-0 EMA tokenizer.
_base_ = ['./baseline_vq_l_imagenet.py']
model = dict(prior=dict(ar=dict(size='XL'), align_depth=12))
