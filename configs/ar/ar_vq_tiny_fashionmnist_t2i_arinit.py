# Stage 2 "ar-init", text-to-image: continue the stage-1 EMA caption-conditioned AR (and the
# live projectors, as the official) on the frozen stage-1 EMA tokenizer.
_base_ = ['./ar_vq_tiny_fashionmnist_t2i_vqonly.py']
_stage1 = 'work_dirs/gear_vq_tiny_fashionmnist_t2i/final.pth'

model = dict(init_from=[dict(checkpoint=_stage1, modules={
    'tokenizer_ema.module': 'tokenizer',
    'prior_ema.module.ar': 'prior.ar',
    'prior.align_loss.projectors': 'prior.align_loss.projectors'})])
