# Multi-process data parallel, one DDP per trainable module (gear/engine/distributed.py): the
# default of every gear config: each experiment lists this file in its _base_ (after
# default_runtime.py); add a zero*.py beside it for DeepSpeed.
#   torchrun --nproc_per_node N tools/train.py CONFIG --launcher pytorch
# One process: no wrapper at all. GPU: nccl; CPU: gloo (GearRunner starts it).
# BatchNorm (PatchGAN's default) normalises each rank's batch with its own statistics unless the
# experiment sets ``sync_bn = 'gear'`` (statistics over all ranks, any device: gear's
# SyncBatchNorm), ``'torch'`` (torch's SyncBatchNorm, GPUs only) or ``'auto'`` (torch's on CUDA,
# else gear's; the ImageNet recipes, as the official).
model_wrapper_cfg = dict(
    type='GearDistributedDataParallel',
    find_unused_parameters=False,  # every phase's loss reaches all of its module's parameters
    broadcast_buffers=False,
    average_log_vars=False)  # default_hooks.log_sync (LogSyncHook) already logs means over ranks
