# The text-to-image baseline of the GPIC recipe: the same fresh LlamaGen-1B on the frozen stage-0
# (llamagen-repa warm-up) tokenizer instead of the GEAR one (the official --vq-ckpt choice).
_base_ = ['./ar_vq_1b_gpic_t2i.py']
_stage0 = 'work_dirs/tokenizer_vq16_imagenet/final.pth'
model = dict(init_from=[dict(checkpoint=_stage0, modules={'tokenizer_ema.module': 'tokenizer'})])
