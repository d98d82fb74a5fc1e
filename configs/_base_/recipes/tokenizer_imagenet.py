# Stage 0, reference recipe (REFERENCE.md), any quantizer family: the public tokenizer weights
# (which lack a discriminator) warmed up on ImageNet 256 px: recon + LPIPS + GAN fine-tuning,
# global batch 256, AdamW 1e-4, EMA 0.9999, 400k steps, bf16. A config adds the tokenizer
# fragment and the public weights it starts from (model.init_from).
_base_ = [
    '../default_runtime.py',
    '../strategies/ddp.py',
    '../models/tokenizer_warmup.py',
    '../datasets/imagenet.py',
    '../schedules/tokenizer_warmup.py',
]

model = dict(
    perceptual_loss=dict(type='LPIPS', net='vgg', loss_weight=1.0),  # ImageNet VGG16 weights
    gan_loss=dict(type='GANLoss', loss_type='hinge', loss_weight=0.1, disc_start=0),
    ema_decay=0.9999,
)
_adamw = dict(type='FusedAdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
optim_wrapper = dict(
    tokenizer=dict(type='GearAmpOptimWrapper', dtype='bfloat16', optimizer=_adamw),
    discriminator=dict(type='GearAmpOptimWrapper', dtype='bfloat16', optimizer=_adamw))
custom_hooks = [dict(type='ReconstructionVisHook', num_images=32, nrow=8)]
val_evaluator = dict(type='ReconstructionMetric')
test_evaluator = val_evaluator
# The official converts the discriminator's BatchNorm to SyncBatchNorm when distributed:
# torch's on CUDA, gear's elsewhere (a no-op in one process).
sync_bn = 'auto'
