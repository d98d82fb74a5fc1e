"""The quantizer contract shared by every quantizer family (VQ, LFQ, IBQ).

``forward(z) -> QuantizerOutput``. The distance tensor ``d`` is the quantity GEAR's two read-outs
consume: ``argmin d`` is the hard token, ``softmax(-d / tau)`` the soft one. ``d`` must stay
differentiable with respect to the encoder output (and the codebook where one is learnt).
Losses and metrics live in separate dicts so that a diagnostic can never leak into a total.
"""
from dataclasses import dataclass, field
from typing import Dict

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from gear.utils.distributed import is_distributed


@dataclass
class QuantizerOutput:
    """What a quantizer returns.

    Attributes:
        z_q: (B, C, H, W) quantised latent; straight-through, so its gradient reaches ``z``.
        indices: (B, H, W) long, ``argmin`` of ``d``.
        d: (B, H*W, K) distance of every position to every code; lower is closer; differentiable.
        losses: named loss terms, already weighted (summed by the caller into the total).
        metrics: named diagnostics (detached), never summed into a loss.
    """
    z_q: Tensor
    indices: Tensor
    d: Tensor
    losses: Dict[str, Tensor] = field(default_factory=dict)
    metrics: Dict[str, Tensor] = field(default_factory=dict)


def mean_over_ranks(x: Tensor) -> Tensor:
    """Mean of ``x`` over all ranks in value; the gradient flows to this rank's ``x`` only.

    Forward: ``all_reduce(x) / W`` (one collective; every rank must call it). Backward:
    straight-through to the local ``x``, with no collective. That is the exact gradient under
    data parallelism: for ``L(mean_r x_r)`` the true gradient w.r.t. rank r's parameters is
    ``L'(mean) * dx_r / W``; rank r gets ``L'(mean) * dx_r`` here, and DDP / DeepSpeed divide
    the summed gradients by W. One process with batch W*B and W processes with batch B
    therefore see the same loss and the same gradients (tests/engine/test_rank_equivalence.py).
    Identity when not distributed.
    """
    if not is_distributed():
        return x
    total = x.detach().clone()
    dist.all_reduce(total)
    return x + (total / dist.get_world_size() - x).detach()


def entropy_regularizer(d: Tensor, temperature: float = 0.01) -> Tensor:
    """Per-sample entropy minus the entropy of the batch-mean assignment (REFERENCE.md).

    Low per-sample entropy makes each assignment confident; high batch entropy spreads the
    assignments over the codebook. The batch mean is taken over all ranks
    (:func:`mean_over_ranks`), so this is a collective: every rank must call it.

    Args:
        d: (..., K) distances, lower is closer.
        temperature: the assignment is ``softmax(-d / temperature)``.
    """
    logits = (-d / temperature).reshape(-1, d.shape[-1])  # (N, K)
    probs = logits.softmax(-1)
    log_probs = F.log_softmax(logits + 1e-5, dim=-1)
    sample_entropy = -(probs * log_probs).sum(-1).mean()
    avg_probs = mean_over_ranks(probs.mean(0))  # (K,), the same on every rank
    avg_entropy = -(avg_probs * torch.log(avg_probs + 1e-5)).sum()
    return sample_entropy - avg_entropy


@torch.no_grad()
def code_usage_metrics(indices: Tensor, codebook_size: int) -> Dict[str, Tensor]:
    """Batch-level codebook diagnostics: fraction of codes used, perplexity, entropy (nats)."""
    counts = torch.bincount(indices.reshape(-1), minlength=codebook_size).float()
    return usage_from_counts(counts)


def usage_from_counts(counts: Tensor) -> Dict[str, Tensor]:
    """Usage fraction, perplexity and entropy (nats) of a histogram of code counts (K,)."""
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return dict(usage=(counts > 0).float().mean(), perplexity=entropy.exp(), entropy=entropy)
