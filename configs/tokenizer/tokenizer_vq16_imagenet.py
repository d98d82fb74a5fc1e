# Stage 0, reference recipe (REFERENCE.md): LlamaGen VQ-16 warmed up on ImageNet 256 px from the
# public LlamaGen tokenizer weights (which lack a discriminator): recon + LPIPS + GAN fine-tuning,
# global batch 256, AdamW 1e-4, EMA 0.9999, 400k steps, bf16. For 8 GPUs:
#   torchrun --nproc_per_node 8 tools/train.py configs/tokenizer/tokenizer_vq16_imagenet.py --launcher pytorch
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/strategies/ddp.py',
    '../_base_/models/vq16.py',
    '../_base_/models/tokenizer_warmup.py',
    '../_base_/datasets/imagenet.py',
    '../_base_/schedules/tokenizer_warmup.py',
]

model = dict(
    tokenizer={{_base_._tokenizer}},
    # LlamaGen's released VQ-16 (https://huggingface.co/FoundationVision/LlamaGen, vq_ds16_c2i.pt),
    # converted on load; the EMA starts from the same weights
    init_from=[dict(checkpoint='checkpoints/vq_ds16_c2i.pt', modules=dict(tokenizer='tokenizer'))],
    perceptual_loss=dict(type='LPIPS', net='vgg', loss_weight=1.0),  # ImageNet VGG16 weights
    gan_loss=dict(type='GANLoss', loss_type='hinge', loss_weight=0.1, disc_start=0),
    ema_decay=0.9999,
)
_adamw = dict(type='FusedAdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
optim_wrapper = dict(
    tokenizer=dict(type='GearAmpOptimWrapper', dtype='bfloat16', optimizer=_adamw),
    discriminator=dict(type='GearAmpOptimWrapper', dtype='bfloat16', optimizer=_adamw))
custom_hooks = [dict(type='ReconstructionVisHook', num_images=32, nrow=8)]
val_evaluator = dict(type='ReconstructionMetric',
                     codebook_size={{_base_._tokenizer.quantizer.codebook_size}})  # 16384
test_evaluator = val_evaluator
