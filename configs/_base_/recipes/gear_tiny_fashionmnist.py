# Stage 1, GEAR joint, on a laptop CPU, any quantizer family: the stage-0 tiny tokenizer + a small
# LlamaGen GPT trained together on Fashion-MNIST (8x8 tokens), aligned to the offline
# EfficientNet-Lite0 teacher. A config adds the tokenizer fragment and the stage-0 link:
#   model = dict(tokenizer={{_base_._tokenizer}}, init_from=[dict(checkpoint=_stage0, ...)])
_base_ = [
    '../default_runtime.py',
    '../strategies/ddp.py',
    '../models/ar_tiny.py',
    '../models/gear.py',
    '../datasets/fashion_mnist.py',
    '../schedules/gear.py',
]

_max_iters = 300
_val_interval = _max_iters // 2  # 150
_log_interval = 20
_lr = 4 * 1e-4  # as stage 0's tiny run

model = dict(
    # the offline teacher, at 128 px (the images are 32 px) on the 8x8 token grid
    teachers=dict(effnet=dict(type='EfficientNetLite0Teacher', grid_size=8, image_size=128)),
    prior=dict(ar={{_base_._ar}}, align_depth=2,  # 2 of 4 blocks (the paper: 8 of 24 for L)
               align_loss=dict(projector_hidden_dim=256)),
    perceptual_loss=dict(type='STLPIPS', net='alex', loss_weight=0.5),  # as stage 0
    gan_loss=dict(disc_start=0),  # the discriminator is warm from stage 0
    ema_decay=0.99,  # a 300-step run
)
_adamw = dict(type='AdamW', lr=_lr, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
optim_wrapper = dict(tokenizer=dict(optimizer=_adamw), discriminator=dict(optimizer=_adamw),
                     prior=dict(optimizer=_adamw))
train_cfg = dict(max_iters=_max_iters, val_interval=_val_interval)
default_hooks = dict(logger=dict(interval=_log_interval),
                     checkpoint=dict(interval=_val_interval, max_keep_ckpts=2))
custom_hooks = [dict(type='ReconstructionVisHook', num_images=32, nrow=8)]
log_processor = dict(window_size=_log_interval)
val_evaluator = dict(type='ReconstructionMetric')
test_evaluator = val_evaluator
