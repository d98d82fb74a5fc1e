# Baseline LlamaGen-REPA, reference recipe (IBQ): the same fresh GPT-L (+ REPA) on the frozen
# stage-0 (warm-up) EMA IBQ-16 tokenizer. The released Warmup-IBQ instead (its vq_ema, the
# official default): --cfg-options model.init_from.0.checkpoint=warmup-ibq16
_base_ = ['./ar_ibq_l_imagenet_vqonly.py']
_stage0 = 'work_dirs/tokenizer_ibq16_imagenet/final.pth'
model = dict(init_from=[dict(checkpoint=_stage0, modules={'tokenizer_ema.module': 'tokenizer'})])
