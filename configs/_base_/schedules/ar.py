# Stage-2 / baseline optimisation (REFERENCE.md): the prior alone, AdamW 1e-4 (0.9, 0.999),
# wd 0, clip 1.0, constant LR after a 1-step warm-up; the paper trains to 4M steps in total.
_lr = 1e-4
_max_iters = 4_000_000 - 400_000  # 4M total minus stage 1's 400k
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
