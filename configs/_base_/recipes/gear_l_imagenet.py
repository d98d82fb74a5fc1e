# Stage 1, GEAR joint, reference recipe (REFERENCE.md), any quantizer family: tokenizer + PatchGAN
# + LlamaGen GPT-L (+ REPA projector) on ImageNet 256 px, DINOv2 ViT-B/14 teacher, tau 0.1,
# lambda 0.5, lambda_ar 0.5, D = 8, global batch 256, AdamW 1e-4 for every group, EMA 0.9999,
# 400k steps, bf16. A config adds the tokenizer fragment and the stage-0 link.
_base_ = [
    '../default_runtime.py',
    '../strategies/ddp.py',
    '../models/llamagen_gpt_l.py',
    '../models/gear.py',
    '../teachers/dinov2_vitb14.py',
    '../datasets/imagenet.py',
    '../schedules/gear.py',
]

model = dict(
    teachers={{_base_._teachers}},
    prior=dict(ar={{_base_._ar}}, align_depth=8),  # D = 8 of 24 blocks for L
    readout=dict(type='SoftReadout', tau=0.1),
    lambda_align=0.5,
    lambda_ar=0.5,
)
_adamw = dict(type='FusedAdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
_group = dict(type='GearAmpOptimWrapper', dtype='bfloat16', optimizer=_adamw, clip_grad=dict(max_norm=1.0))
optim_wrapper = dict(tokenizer=_group, discriminator=_group, prior=_group)
custom_hooks = [dict(type='ReconstructionVisHook', num_images=32, nrow=8)]
val_evaluator = dict(type='ReconstructionMetric')
test_evaluator = val_evaluator
# The official converts the discriminator's BatchNorm to SyncBatchNorm when distributed:
# torch's on CUDA, gear's elsewhere (a no-op in one process).
sync_bn = 'auto'
