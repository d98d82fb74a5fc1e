# Stage-2 / baseline optimisation (REFERENCE.md): the prior alone, AdamW 1e-4 (0.9, 0.999),
# wd 0, clip 1.0, constant LR after a 1-step warm-up. Budget as the official scripts: a fresh AR
# (vq-only, baseline) trains 4M steps; ar-init, which continues stage 1's 400k, 3.6M (its configs).
_lr = 1e-4
_max_iters = 4_000_000
_val_interval = 20_000

_adamw = dict(type='AdamW', lr=_lr, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
optim_wrapper = dict(
    constructor='ModuleOptimWrapperConstructor',
    prior=dict(type='GearOptimWrapper', optimizer=_adamw, clip_grad=dict(max_norm=1.0)))
param_scheduler = dict(prior=[dict(type='ConstantLR', factor=1e-3, by_epoch=False, begin=0, end=2)])

train_cfg = dict(type='IterBasedTrainLoop', max_iters=_max_iters, val_interval=_val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = dict(type='MeanMetric')  # validation NTP loss and AR-vs-teacher cosine
test_evaluator = val_evaluator
