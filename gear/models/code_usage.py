"""Running histogram of the codes a tokenizer emits, summed over steps and ranks.

The model adds each batch's indices (a ``bincount`` on device, no host sync); the codebook
monitor hook reads, all-reduces and resets it every N steps, so usage is measured over a window
of N steps of the global batch rather than over one local batch.
"""
from typing import Dict

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gear.models.quantizers.base import usage_from_counts


class CodeUsageMeter(nn.Module):
    """Histogram (K,) of emitted codes; not part of checkpoints.

    Args:
        codebook_size (int): number of codes K.
        name (str): tag under which the monitor logs it (``codebook/{name}/usage``).
    """

    def __init__(self, codebook_size: int, name: str = 'tokenizer'):
        super().__init__()
        self.name = name
        self.register_buffer('counts', torch.zeros(codebook_size, dtype=torch.long), persistent=False)

    @torch.no_grad()
    def update(self, indices: Tensor) -> None:
        self.counts += torch.bincount(indices.reshape(-1), minlength=self.counts.numel())

    @torch.no_grad()
    def summarize(self, reset: bool = True) -> Dict[str, float]:
        """Usage fraction, perplexity and entropy over the window, summed over all ranks."""
        counts = self.counts.clone()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(counts)
        if reset:
            self.counts.zero_()
        return {k: float(v) for k, v in usage_from_counts(counts.float()).items()}
