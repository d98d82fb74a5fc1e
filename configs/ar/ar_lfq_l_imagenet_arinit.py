# Stage 2 "ar-init", reference recipe (LFQ): continue from the stage-1 EMA GPT-L (loaded into
# the AR and its EMA; projectors from the live copy, as the official) on the frozen stage-1 EMA
# tokenizer.
_base_ = ['./ar_lfq_l_imagenet_vqonly.py']
_stage1 = 'work_dirs/gear_lfq_l_imagenet/final.pth'
model = dict(init_from=[dict(checkpoint=_stage1, modules={  # the official --ar-init-ckpt:
    'tokenizer_ema.module': 'tokenizer',                      # the EMA tokenizer,
    'prior_ema.module.ar': 'prior.ar',                        # the EMA AR (its EMA starts equal),
    'prior.align_loss.projectors': 'prior.align_loss.projectors'})])
train_cfg = dict(max_iters=4_000_000 - 400_000)  # 3.6M: stage 1 trained the first 400k
