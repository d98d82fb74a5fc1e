# DeepSpeed ZeRO stage 3, one engine per optimizer group (gear/engine/zero.py): optimizer state, gradients and
# parameters partitioned over ranks. Single-module stages only (FrozenTokenizerAR: stage 2,
# baseline): GEAR stage 1 calls its modules frozen outside their engines and refuses ZeRO-3.
# Add this file to an experiment's _base_ (after default_runtime.py), or pass
#   --cfg-options deepspeed_cfg.zero_stage=3
# and launch with: torchrun --nproc_per_node N tools/train.py CONFIG --launcher pytorch
# fp32 here; extra DeepSpeed keys go in ``config``, merged over gear's defaults (accumulation 1,
# each group's clip_grad.max_norm as gradient_clipping), e.g. config=dict(bf16=dict(enabled=True)).
# Checkpoints: iter_N.pth (whole state dict) + iter_N.deepspeed/<group>/ (ZeRO shards, for resume).
deepspeed_cfg = dict(zero_stage=3, config=dict())
