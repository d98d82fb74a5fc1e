# Stage-2 / baseline model: the prior (LlamaGen GPT + REPA projector) on a frozen tokenizer.
# The experiment adds ``tokenizer``, ``init_from``, ``prior.ar`` and ``teachers`` (from the
# fragments' ``_tokenizer``, ``_ar``, ``_teachers``: ``{{_base_._ar}}``).
model = dict(
    type='FrozenTokenizerAR',
    prior=dict(align_loss=dict(type='REPALoss', projector_hidden_dim=2048), align_depth=8),
    lambda_ar=0.5,
    ema_decay=0.9999,
)
