# Baseline LlamaGen-REPA, reference recipe (LFQ): the same fresh GPT-L (+ REPA) on the frozen stage-0
# (warm-up) EMA Open-MAGVIT2 LFQ-16 tokenizer. Released Warmup-LFQ instead:
# model.init_from.0.checkpoint=lfq-with-gan.pt model.init_from.0.modules=tokenizer:tokenizer
_base_ = ['./ar_lfq_l_imagenet_vqonly.py']
_stage0 = 'work_dirs/tokenizer_lfq16_imagenet/final.pth'
model = dict(init_from=[dict(checkpoint=_stage0, modules={'tokenizer_ema.module': 'tokenizer'})])
