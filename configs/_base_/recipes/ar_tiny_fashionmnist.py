# Stage 2 / baseline on a laptop CPU, any quantizer family: a fresh small GPT (+ REPA) on a frozen
# tokenizer, tokens encoded online. A config adds the tokenizer fragment and the link to the
# stage whose tokenizer it reads:
#   model = dict(tokenizer={{_base_._tokenizer}}, init_from=[dict(checkpoint=_stage1, ...)])
_base_ = [
    '../default_runtime.py',
    '../strategies/ddp.py',
    '../models/ar_tiny.py',
    '../models/frozen_tokenizer_ar.py',
    '../datasets/fashion_mnist.py',
    '../schedules/ar.py',
]

_max_iters = 300
_val_interval = _max_iters // 3  # 100
_log_interval = 20
_lr = 4 * 1e-4

model = dict(
    teachers=dict(effnet=dict(type='EfficientNetLite0Teacher', grid_size=8, image_size=128)),
    prior=dict(ar={{_base_._ar}}, align_depth=2, align_loss=dict(projector_hidden_dim=256)),
    ema_decay=0.99,
)
optim_wrapper = dict(prior=dict(optimizer=dict(lr=_lr)))
train_cfg = dict(max_iters=_max_iters, val_interval=_val_interval)
default_hooks = dict(logger=dict(interval=_log_interval),
                     checkpoint=dict(interval=_val_interval * 2, max_keep_ckpts=2))  # 200
log_processor = dict(window_size=_log_interval)
