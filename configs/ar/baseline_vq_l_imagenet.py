# Baseline LlamaGen-REPA, reference recipe: the same fresh GPT-L (+ REPA) on the frozen
# stage-0 (warm-up) EMA tokenizer. The released Warmup-VQ instead (its vq_ema, the
# official default): --cfg-options model.init_from.0.checkpoint=warmup-vq16
_base_ = ['./ar_vq_l_imagenet_vqonly.py']
_stage0 = 'work_dirs/tokenizer_vq16_imagenet/final.pth'
model = dict(init_from=[dict(checkpoint=_stage0, modules={'tokenizer_ema.module': 'tokenizer'})])
