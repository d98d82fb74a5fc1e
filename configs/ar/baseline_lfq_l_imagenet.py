# Baseline LlamaGen-REPA, reference recipe (LFQ): the same fresh GPT-L (+ REPA) on the frozen
# stage-0 (warm-up) EMA Open-MAGVIT2 LFQ-16 tokenizer. The released Warmup-LFQ instead (its
# vq_ema, the official default): --cfg-options model.init_from.0.checkpoint=warmup-lfq16
_base_ = ['./ar_lfq_l_imagenet_vqonly.py']
_stage0 = 'work_dirs/tokenizer_lfq16_imagenet/final.pth'
model = dict(init_from=[dict(checkpoint=_stage0, modules={'tokenizer_ema.module': 'tokenizer'})])
