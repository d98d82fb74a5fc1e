# Stage 1, GEAR joint, with LlamaGen GPT-B (12 layers, dim 768): D = 4 (REFERENCE.md).
_base_ = ['./gear_vq_l_imagenet.py']
model = dict(prior=dict(ar=dict(size='B'), align_depth=4))
