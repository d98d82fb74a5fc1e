"""Batch norm with statistics over all ranks, on any backend (gloo on CPUs included).

torch's ``nn.SyncBatchNorm`` runs on GPUs only (its kernels are CUDA / XPU), so a multi-process
CPU run had per-rank batch statistics: N processes with batch B normalised differently from one
process with batch N*B. ``SyncBatchNorm`` here is built from ordinary ops and one all-reduce:

    forward, training:  [sum x, sum x^2] per channel + [count] -> all_reduce (sum)   (2C + 1,)
                        mean = sum / n,  var = sum x^2 / n - mean^2   (biased, as BatchNorm)
    backward:           the all-reduce's backward is an all-reduce (sum) of the gradients of
                        those sums, so every rank's input gets the gradient of the global batch
In eval mode (or without a process group) it is ``nn.BatchNorm2d``: running statistics, no
collective. Running statistics are updated from the global batch (unbiased variance), so they
stay equal on every rank. Every rank must run the same training-mode forwards and backwards, as
with torch's SyncBatchNorm.

``convert_sync_batchnorm(module, 'gear' | 'torch')`` swaps the BatchNorm layers of a module,
keeping their parameters and buffers (the runner's ``sync_bn`` key).
"""
import torch
import torch.distributed as dist
from torch import Tensor, nn

from .distributed import is_distributed


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; backward: sum of the gradients over ranks (both collectives)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training-mode statistics are taken over the batches of all ranks.

    Args: as ``nn.BatchNorm2d`` (``num_features``, ``eps``, ``momentum``, ``affine``,
        ``track_running_stats``); any input with channels in dim 1 (B, C, ...).
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f'SyncBatchNorm: expected (B, C, ...) input, got shape {tuple(x.shape)}')

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        use_batch = self.training or not self.track_running_stats
        if not (use_batch and is_distributed()):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        count = torch.full((1,), x.numel() // x.shape[1], dtype=xf.dtype, device=x.device)
        stats = torch.cat([xf.sum(dims), (xf * xf).sum(dims), count])  # (2C + 1,)
        stats = _AllReduceSum.apply(stats)
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n  # (C,)
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)  # (C,) biased
        if self.training and self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), n.detach())
        shape = [1, c] + [1] * (x.dim() - 2)  # broadcast over (B, C, ...)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, n: Tensor) -> None:
        self.num_batches_tracked += 1
        momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                    else self.momentum)
        unbiased = var * n / (n - 1).clamp_min(1)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)


def convert_sync_batchnorm(module: nn.Module, implementation: str = 'gear') -> nn.Module:
    """``module`` with every BatchNorm layer replaced by a synchronised one (same parameters and
    buffers). ``implementation``: ``'gear'`` (this file; any device and backend) or ``'torch'``
    (``nn.SyncBatchNorm``; GPUs only)."""
    if implementation == 'torch':
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if implementation != 'gear':
        raise ValueError(f"sync_bn: {implementation!r} is not an implementation; use 'gear' "
                         "(any device) or 'torch' (GPUs)")
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
            module, (SyncBatchNorm, nn.SyncBatchNorm)):
        sync = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                             module.track_running_stats)
        if module.affine:
            sync.weight, sync.bias = module.weight, module.bias
        if module.track_running_stats:
            sync.running_mean, sync.running_var = module.running_mean, module.running_var
            sync.num_batches_tracked = module.num_batches_tracked
        sync.train(module.training)
        return sync
    for name, child in module.named_children():
        converted = convert_sync_batchnorm(child, implementation)
        if converted is not child:
            setattr(module, name, converted)
    return module

