# Stage-1 GEAR model (REFERENCE.md): tokenizer + PatchGAN + prior (LlamaGen GPT + REPA projector).
# The experiment adds ``tokenizer``, ``prior.ar`` and ``teachers`` from the fragments' helpers
# (``_tokenizer``, ``_ar``, ``_teachers``: ``tokenizer={{_base_._tokenizer}}``).
model = dict(
    type='GEAR',
    discriminator=dict(type='PatchGANDiscriminator', in_channels=3, base_channels=64, num_layers=3),
    recon_loss=dict(type='L1Loss', loss_weight=1.0),
    perceptual_loss=dict(type='LPIPS', net='vgg', loss_weight=1.0),
    gan_loss=dict(type='GANLoss', loss_type='hinge', loss_weight=0.1, disc_start=0),
    prior=dict(align_loss=dict(type='REPALoss', projector_hidden_dim=2048), align_depth=8),
    readout=dict(type='SoftReadout', tau=0.1),
    lambda_align=0.5,  # lambda: soft alignment in the tokenizer loss
    lambda_ar=0.5,     # hard alignment in the prior loss
    ema_decay=0.9999,
)
