# Stage 0 on a laptop CPU, any quantizer family: a small tokenizer warmed up on Fashion-MNIST
# (32 px, 8x8 tokens). A config adds the tokenizer fragment (configs/_base_/models/*_tiny.py):
#   _base_ = ['../_base_/models/vq_tiny.py', '../_base_/recipes/tokenizer_tiny_fashionmnist.py']
#   model = dict(tokenizer={{_base_._tokenizer}})
#   val_evaluator = dict(codebook_size={{_base_._tokenizer.quantizer.codebook_size}})
_base_ = [
    '../default_runtime.py',
    '../strategies/ddp.py',
    '../models/tokenizer_warmup.py',
    '../datasets/fashion_mnist.py',
    '../schedules/tokenizer_warmup.py',
]

_max_iters = 500
_val_interval = _max_iters // 2  # 250
_log_interval = 20
_lr = 4 * 1e-4  # 4x the reference LR: a short run on a small batch

model = dict(
    perceptual_loss=dict(type='STLPIPS', net='alex', loss_weight=0.5),
    gan_loss=dict(disc_start=_max_iters // 2),  # reconstruction first, then GAN fine-tuning
    ema_decay=0.99,  # a 500-step run: the EMA must follow within ~100 steps
)
_adamw = dict(type='AdamW', lr=_lr, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
optim_wrapper = dict(tokenizer=dict(optimizer=_adamw), discriminator=dict(optimizer=_adamw))
train_cfg = dict(max_iters=_max_iters, val_interval=_val_interval)
default_hooks = dict(logger=dict(interval=_log_interval),
                     checkpoint=dict(interval=_val_interval, max_keep_ckpts=2))
custom_hooks = [
    dict(type='ValidateAtStartHook'),
    dict(type='ReconstructionVisHook', num_images=32, nrow=8),
]
log_processor = dict(window_size=_log_interval)
val_evaluator = dict(type='ReconstructionMetric')
test_evaluator = val_evaluator
