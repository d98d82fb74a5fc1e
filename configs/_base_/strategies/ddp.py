# Multi-process data parallel, one DDP per trainable module (gear/engine/distributed.py): the
# default of every gear config (default_runtime.py inherits this file).
#   torchrun --nproc_per_node N tools/train.py CONFIG --launcher pytorch
# One process: no wrapper at all. GPU: nccl; CPU: gloo (GearRunner starts it).
# BatchNorm (PatchGAN's default) keeps per-rank statistics unless the experiment sets
# ``sync_bn = 'torch'`` (GPU only: torch's SyncBatchNorm has no CPU kernel).
model_wrapper_cfg = dict(
    type='GearDistributedDataParallel',
    find_unused_parameters=False,  # every phase's loss reaches all of its module's parameters
    broadcast_buffers=False,
    average_log_vars=False)  # default_hooks.log_sync (LogSyncHook) already logs means over ranks
