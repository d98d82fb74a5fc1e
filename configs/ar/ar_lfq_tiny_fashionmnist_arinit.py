# Stage 2 "ar-init" (LFQ): continue from the stage-1 EMA AR (into the AR and its EMA;
# projectors from the live copy, as the official) on the frozen stage-1 EMA tokenizer.
_base_ = ['./ar_lfq_tiny_fashionmnist_vqonly.py']
_stage1 = 'work_dirs/gear_lfq_tiny_fashionmnist/final.pth'

model = dict(init_from=[dict(checkpoint=_stage1, modules={  # the official --ar-init-ckpt:
    'tokenizer_ema.module': 'tokenizer',                      # the EMA tokenizer,
    'prior_ema.module.ar': 'prior.ar',                        # the EMA AR (its EMA starts equal),
    'prior.align_loss.projectors': 'prior.align_loss.projectors'})])
