# Baseline LlamaGen-REPA with LlamaGen GPT-B: D = 4, on the frozen stage-0 EMA tokenizer.
_base_ = ['./baseline_vq_l_imagenet.py']
model = dict(prior=dict(ar=dict(size='B'), align_depth=4))
