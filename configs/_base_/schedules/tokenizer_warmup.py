# Stage-0 optimisation (REFERENCE.md): AdamW (0.9, 0.999), weight decay 0, eps 1e-8, grad clip
# 1.0, constant LR 1e-4 after a 1-step warm-up, for tokenizer and discriminator alike.
_lr = 1e-4
_max_iters = 400_000
_val_interval = 10_000

_adamw = dict(type='AdamW', lr=_lr, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8)
optim_wrapper = dict(
    constructor='ModuleOptimWrapperConstructor',
    tokenizer=dict(type='GearOptimWrapper', optimizer=_adamw, clip_grad=dict(max_norm=1.0)),
    discriminator=dict(type='GearOptimWrapper', optimizer=_adamw, clip_grad=dict(max_norm=1.0)))
# Step 0 runs at 1e-3 x LR, every later step at LR (mmengine's ConstantLR restores the LR at
# step end - 1, so end=2 is a warm-up of exactly one step).
_warmup = [dict(type='ConstantLR', factor=1e-3, by_epoch=False, begin=0, end=2)]
param_scheduler = dict(tokenizer=_warmup, discriminator=_warmup)

train_cfg = dict(type='IterBasedTrainLoop', max_iters=_max_iters, val_interval=_val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = dict(type='ReconstructionMetric')
test_evaluator = val_evaluator
