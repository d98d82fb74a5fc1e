# Stage 2 "vq-only" on a laptop CPU: a fresh small GPT (+ REPA) on the frozen stage-1 GEAR
# tokenizer (its EMA weights), tokens encoded online. Compare with the baseline config, which
# differs only in the tokenizer it reads.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/vq_tiny.py',
    '../_base_/models/ar_tiny.py',
    '../_base_/models/frozen_tokenizer_ar.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/ar.py',
]
stage1 = 'work_dirs/gear_vq_tiny_fashionmnist/final.pth'  # this stage from that stage

max_iters = 300
val_interval = 100
log_interval = 20
lr = 4e-4

model = dict(
    tokenizer={{_base_.tokenizer}},
    init_from=[dict(checkpoint=stage1, modules={'tokenizer_ema.module': 'tokenizer'})],
    teachers=dict(effnet=dict(type='EfficientNetLite0Teacher', grid_size=8, image_size=128)),
    prior=dict(ar={{_base_.ar}}, align_depth=2, align_loss=dict(projector_hidden_dim=256)),
    ema_decay=0.99,
)
optim_wrapper = dict(prior=dict(optimizer=dict(lr=lr)))
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(logger=dict(interval=log_interval),
                     checkpoint=dict(interval=val_interval * 2, max_keep_ckpts=2))
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='CodebookMonitorHook'),
    dict(type='ExportWeightsHook'),
]
log_processor = dict(window_size=log_interval)
