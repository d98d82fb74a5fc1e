# Stage-0 model: tokenizer + PatchGAN, L1 + perceptual + quantizer + GAN losses (REFERENCE.md).
# The experiment config adds ``tokenizer={{_base_._tokenizer}}`` from a models/ fragment (vq_tiny.py,
# vq16.py).
model = dict(
    type='TokenizerWarmup',
    discriminator=dict(type='PatchGANDiscriminator', in_channels=3, base_channels=64, num_layers=3),
    recon_loss=dict(type='L1Loss', loss_weight=1.0),
    perceptual_loss=dict(type='STLPIPS', net='vgg', loss_weight=1.0),  # offline default; LPIPS for ImageNet VGG
    gan_loss=dict(type='GANLoss', loss_type='hinge', loss_weight=0.1, disc_start=0),
    ema_decay=0.9999,
)
