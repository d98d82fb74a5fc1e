# Stage 2 "vq-only" on a laptop CPU: a fresh small GPT (+ REPA) on the frozen stage-1 GEAR
# tokenizer (its EMA weights), tokens encoded online. Compare with the baseline config, which
# differs only in the tokenizer it reads.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/strategies/ddp.py',
    '../_base_/models/vq_tiny.py',
    '../_base_/models/ar_tiny.py',
    '../_base_/models/frozen_tokenizer_ar.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/ar.py',
]
_stage1 = 'work_dirs/gear_vq_tiny_fashionmnist/final.pth'  # this stage from that stage

_max_iters = 300
_val_interval = _max_iters // 3  # 100
_log_interval = 20
_lr = 4 * 1e-4

model = dict(
    tokenizer={{_base_._tokenizer}},
    init_from=[dict(checkpoint=_stage1, modules={'tokenizer_ema.module': 'tokenizer'})],
    teachers=dict(effnet=dict(type='EfficientNetLite0Teacher', grid_size=8, image_size=128)),
    prior=dict(ar={{_base_._ar}}, align_depth=2, align_loss=dict(projector_hidden_dim=256)),
    ema_decay=0.99,
)
optim_wrapper = dict(prior=dict(optimizer=dict(lr=_lr)))
train_cfg = dict(max_iters=_max_iters, val_interval=_val_interval)
default_hooks = dict(logger=dict(interval=_log_interval),
                     checkpoint=dict(interval=_val_interval * 2, max_keep_ckpts=2))  # 200
log_processor = dict(window_size=_log_interval)
