# Stage 2 "arinit" with LlamaGen GPT-XL: D = 12 (REFERENCE.md); stage 1 from gear_vq_xl_imagenet.
# From the GPT-L vq-only recipe, as ar_vq_l_imagenet_arinit.py is (one link: at most 3 levels).
_base_ = ['./ar_vq_l_imagenet_vqonly.py']
_stage1 = 'work_dirs/gear_vq_xl_imagenet/final.pth'
model = dict(init_from=[dict(checkpoint=_stage1, modules={  # the official --ar-init-ckpt:
    'tokenizer_ema.module': 'tokenizer',                      # the EMA tokenizer,
    'prior_ema.module.ar': 'prior.ar',                        # the EMA AR (its EMA starts equal),
    'prior.align_loss.projectors': 'prior.align_loss.projectors'})],
             prior=dict(ar=dict(size='XL'), align_depth=12))
train_cfg = dict(max_iters=4_000_000 - 400_000)  # 3.6M: stage 1 trained the first 400k
