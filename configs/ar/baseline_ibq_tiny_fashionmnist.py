# Baseline LlamaGen-REPA (IBQ): the same fresh GPT (+ REPA) as the vq-only stage 2, on the frozen
# stage-0 (warm-up) IBQ tokenizer instead of the GEAR one.
_base_ = ['./ar_ibq_tiny_fashionmnist_vqonly.py']
_stage0 = 'work_dirs/tokenizer_ibq_tiny_fashionmnist/final.pth'

model = dict(init_from=[dict(checkpoint=_stage0, modules={'tokenizer_ema.module': 'tokenizer'})])
