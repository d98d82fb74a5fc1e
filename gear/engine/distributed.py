"""``GearDistributedDataParallel``: one DDP per trainable module, the model tree left as it is.

mmengine's ``MMDistributedDataParallel`` wraps the whole model (and bypasses its multi-phase
``train_step``); ``MMSeparateDistributedDataParallel`` swaps the children for DDP objects (so
``self.prior.ar``, EMA key names and state-dict keys change, and custom calls such as
``self.prior.ntp_and_align`` skip DDP's gradient sync). This wrapper instead builds
``DDP(child)`` for each trainable module the model names (``model.train_module_names``) and hands
the handles to the model outside its module tree (``model.set_train_modules``). The phases call
a trainable module through ``model.train_module(name)``; a module frozen in a phase is called
directly, so DDP only ever sees the forward/backward of the phase that steps it::

    tokenizer phase      x^, q = DDP(tokenizer)(x); D and the prior soft branch called raw
    discriminator phase  DDP(D)(x), DDP(D)(x^.detach())      (skipped before disc_start)
    prior phase          DDP(prior)(tokens, cond, y)         Prior.forward = ntp_and_align

A phase that does not run (the GAN before ``disc_start``) never calls its DDP, so no rank waits
for gradients that are not coming. ``find_unused_parameters`` is passed to every DDP.

Logged values: ``LogSyncHook`` (``default_hooks.log_sync``) averages them over ranks once per
logging window, so a run on N processes with batch B/N each logs the same numbers as one process
with batch B. Without that hook, ``average_log_vars=True`` averages each step's values here.
"""
import inspect
import os
from typing import Dict, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gear.registry import MODEL_WRAPPERS
from gear.utils.distributed import ddp_process_group


def average_over_ranks(log_vars: Dict[str, object]) -> Dict[str, object]:
    """Mean over ranks of every scalar entry (one all-reduce); other entries are kept as is."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return log_vars
    keys = [k for k, v in log_vars.items()
            if isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1)]
    if not keys:
        return log_vars
    device = next((v.device for v in log_vars.values() if torch.is_tensor(v)), torch.device('cpu'))
    if dist.get_backend() == 'nccl' and device.type != 'cuda':
        device = torch.device('cuda', torch.cuda.current_device())
    flat = torch.stack([torch.as_tensor(log_vars[k], dtype=torch.float64, device=device).reshape(())
                        for k in keys])  # (n_keys,)
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    out = dict(log_vars)
    for k, v in zip(keys, flat):
        ref = log_vars[k]
        out[k] = v.to(ref.dtype).to(ref.device) if torch.is_tensor(ref) else float(v)
    return out


def buffer_sync_kwargs(broadcast_buffers: bool) -> dict:
    """DDP's per-forward buffer sync flag: ``forward_sync_buffers`` in newer torch (where
    ``broadcast_buffers`` is deprecated), ``broadcast_buffers`` before."""
    if 'forward_sync_buffers' in inspect.signature(DistributedDataParallel.__init__).parameters:
        return dict(forward_sync_buffers=broadcast_buffers)
    return dict(broadcast_buffers=broadcast_buffers)


def local_device_ids(module: nn.Module) -> Optional[list]:
    """``[local cuda index]`` for a module on a GPU, None on the CPU (what DDP expects)."""
    param = next(module.parameters(), None)
    if param is None or param.device.type != 'cuda':
        return None
    index = param.device.index
    return [index if index is not None else int(os.environ.get('LOCAL_RANK', 0))]


class GearModelWrapper(nn.Module):
    """Shared part of gear's wrappers: ``.module`` is the model, steps delegate to it.

    Args:
        module (BaseModel): a gear model with ``train_module_names`` / ``set_train_modules``.
        average_log_vars (bool): all-reduce each step's logged values to their mean over ranks
            (one collective per step); off by default because ``LogSyncHook`` does it once per
            logging window.
    """

    def __init__(self, module: nn.Module, average_log_vars: bool = False):
        super().__init__()
        for attr in ('train_module_names', 'set_train_modules', 'train_step'):
            if not hasattr(module, attr):
                raise TypeError(f'model_wrapper_cfg: {type(self).__name__} needs a gear model '
                                f'with {attr!r}; {type(module).__name__} has none')
        self.module = module
        self.average_log_vars = average_log_vars
        self.__dict__['handles'] = {}  # name -> DDP / DeepSpeed engine; not submodules

    def trainable_modules(self) -> Dict[str, nn.Module]:
        """name -> module for each module the model steps that has trainable parameters."""
        out = {}
        for name in self.module.train_module_names:
            child = getattr(self.module, name)
            if any(p.requires_grad for p in child.parameters()):
                out[name] = child
        return out

    def install(self, name: str, handle: nn.Module) -> None:
        self.handles[name] = handle
        self.module.set_train_modules(self.handles)

    def train(self, mode: bool = True) -> 'GearModelWrapper':
        super().train(mode)  # the model's own train() (e.g. frozen tokenizers stay in eval)
        for handle in self.handles.values():
            handle.training = mode  # the handle's flag only; its module followed the model
        return self

    def train_step(self, data, optim_wrapper):
        log_vars = self.module.train_step(data, optim_wrapper)
        return average_over_ranks(log_vars) if self.average_log_vars else log_vars

    def val_step(self, data):
        return self.module.val_step(data)

    def test_step(self, data):
        return self.module.test_step(data)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


@MODEL_WRAPPERS.register_module()
class GearDistributedDataParallel(GearModelWrapper):
    """DDP per trainable module (``configs/_base_/strategies/ddp.py``; the default).

    Args:
        module (BaseModel): the gear model (already on its device).
        find_unused_parameters (bool): passed to each DDP; True only if a phase leaves some of
            its module's parameters without gradient (costs one graph traversal per step).
        broadcast_buffers (bool): DDP's buffer broadcast from rank 0 at every forward (off:
            batch-norm running statistics stay per rank; the runner's ``sync_bn='gear'``, or
            ``'torch'`` on GPUs, gives global batch statistics).
        average_log_vars (bool): see ``GearModelWrapper``.
        **ddp_kwargs: other ``DistributedDataParallel`` arguments (``bucket_cap_mb``, ...).
    """

    def __init__(self, module: nn.Module, find_unused_parameters: bool = False,
                 broadcast_buffers: bool = False, average_log_vars: bool = False, **ddp_kwargs):
        super().__init__(module, average_log_vars)
        ddp_kwargs.pop('device_ids', None)  # chosen per module below
        ddp_kwargs.setdefault('process_group', ddp_process_group())  # see gear.utils.distributed
        for name, child in self.trainable_modules().items():
            self.install(name, DistributedDataParallel(
                child, device_ids=local_device_ids(child),
                find_unused_parameters=find_unused_parameters,
                **buffer_sync_kwargs(broadcast_buffers), **ddp_kwargs))
