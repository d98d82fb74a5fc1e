# Baseline LlamaGen-REPA, text-to-image: the same fresh caption-conditioned GPT (+ REPA) as the
# T2I vq-only stage 2, on the frozen stage-0 (warm-up) tokenizer instead of the GEAR one.
_base_ = ['./ar_vq_tiny_fashionmnist_t2i_vqonly.py']
_stage0 = 'work_dirs/tokenizer_vq_tiny_fashionmnist/final.pth'

model = dict(init_from=[dict(checkpoint=_stage0, modules={'tokenizer_ema.module': 'tokenizer'})])
