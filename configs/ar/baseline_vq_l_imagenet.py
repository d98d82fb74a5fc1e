# Baseline LlamaGen-REPA, reference recipe: the same fresh GPT-L (+ REPA) on the frozen stage-0
# (warm-up) EMA tokenizer. Released Warmup-VQ instead: model.tokenizer_from.checkpoint=vq-with-gan.pt
# model.tokenizer_from.prefix=None
_base_ = ['./ar_vq_l_imagenet_vqonly.py']
_stage0 = 'work_dirs/tokenizer_vq16_imagenet/final.pth'
model = dict(tokenizer_from=dict(checkpoint=_stage0, prefix='tokenizer_ema.module'))
