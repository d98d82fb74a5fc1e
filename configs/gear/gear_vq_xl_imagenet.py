# Stage 1, GEAR joint, with LlamaGen GPT-XL (36 layers, dim 1280): D = 12 (REFERENCE.md).
_base_ = ['./gear_vq_l_imagenet.py']
model = dict(prior=dict(ar=dict(size='XL'), align_depth=12))
