"""Open-MAGVIT2's lookup-free quantizer (LFQ): the codebook is the hypercube {-1, +1}^k.

There are no parameters. Code ``c`` (an integer in [0, K), K = 2**k) has bit ``i`` equal to
``(c >> i) & 1`` (little-endian, as the release's mask ``2**arange(k)``), and the code vector is
``2 * bits - 1``. The nearest code of x is its sign pattern, and the distance GEAR reads out is

    d(x, c) = -2 <x, c>              (B, L, K); argmin d = sign code; differentiable in x

(``||x - c||^2 = ||x||^2 + k - 2 <x, c>``, without the terms that do not depend on c).

Memory. The entropy regulariser of ``softmax(-d / T)`` over (N, K) would keep several (N, K)
tensors for the backward (512 MiB each for LFQ-16 at batch 32 x 256 tokens). Here it is
computed without them:

- the assignment factorises over bits: bit i is +1 with probability ``sigmoid(4 x_i / T)``,
  independently, so the per-sample entropy is the sum of k binary entropies (exact);
- the batch-mean distribution (K,) is a sum over positions of product distributions; it is
  accumulated in chunks of ``entropy_chunk_size`` positions under ``torch.utils.checkpoint``,
  so the backward recomputes one chunk's (chunk, K) probabilities at a time.

``d`` itself stays materialised: it is the :class:`QuantizerOutput` contract (the soft read-out
consumes it). The losses exist in training mode only, as for ``VectorQuantizer``.
"""
import math
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from gear.registry import QUANTIZERS
from gear.models.losses.precision import fp32_region
from .base import QuantizerOutput, code_usage_metrics, mean_over_ranks

EPS = 1e-5  # the release's eps inside log(avg_probs + eps)


def index_to_bits(indices: Tensor, num_bits: int) -> Tensor:
    """indices (...) long -> bits (..., num_bits) bool, bit i = (index >> i) & 1."""
    mask = 2**torch.arange(num_bits, device=indices.device, dtype=torch.long)  # (k,)
    return (indices.unsqueeze(-1) & mask) != 0


def bits_to_index(bits: Tensor) -> Tensor:
    """bits (..., k) bool -> indices (...) long (little-endian)."""
    mask = 2**torch.arange(bits.shape[-1], device=bits.device, dtype=torch.long)  # (k,)
    return (bits.long() * mask).sum(-1)


def binary_entropy_from_logits(a: Tensor) -> Tensor:
    """Entropy (nats) of a Bernoulli with P(1) = sigmoid(a): ``softplus(a) - a sigmoid(a)``."""
    return F.softplus(a) - a * torch.sigmoid(a)


def _chunk_prob_sum(x: Tensor, codebook: Tensor, scale: float) -> Tensor:
    """Sum over the positions of a chunk x (n, k) of ``softmax(scale <x, c>)`` over c: (K,)."""
    return (scale * x @ codebook.t()).softmax(-1).sum(0)  # (n, K) -> (K,)


def lfq_entropy(x: Tensor, codebook: Tensor, temperature: float = 0.01,
                chunk_size: int = 1024) -> Tensor:
    """``entropy_regularizer(-2 <x, c>, temperature)`` without keeping (N, K) tensors.

    Args:
        x: (N, k) latents.
        codebook: (K, k) the {-1, +1} codes, ordered by index.
        temperature: the assignment is ``softmax(2 <x, c> / temperature)``.
        chunk_size: positions per checkpointed chunk of the batch-mean distribution.

    The batch mean is over all ranks (:func:`mean_over_ranks`): a collective.
    """
    # per-sample entropy: independent bits, P(bit i = +1) = sigmoid(4 x_i / T)
    sample_entropy = binary_entropy_from_logits(4.0 * x / temperature).sum(-1).mean()
    scale = 2.0 / temperature
    sums = [checkpoint(_chunk_prob_sum, chunk, codebook, scale, use_reentrant=False)
            if torch.is_grad_enabled() and chunk.requires_grad
            else _chunk_prob_sum(chunk, codebook, scale)
            for chunk in x.split(chunk_size)]  # each (K,)
    avg_probs = mean_over_ranks(torch.stack(sums).sum(0) / x.shape[0])  # (K,)
    avg_entropy = -(avg_probs * torch.log(avg_probs + EPS)).sum()
    return sample_entropy - avg_entropy


@QUANTIZERS.register_module()
class LookupFreeQuantizer(nn.Module):
    """Lookup-free quantizer over {-1, +1}^k with commitment and entropy losses.

    Args:
        codebook_size (int): number of codes K, a power of two; k = log2(K) is the channel
            count of the input z (LFQ-16: 16384, k = 14).
        beta (float): weight of the commitment loss ``mean((x - sg[q])^2)``.
        entropy_loss_ratio (float): weight of the entropy regulariser; 0 omits the term.
        entropy_temperature (float): the regulariser's assignment is ``softmax(-d / T)``.
        entropy_chunk_size (int): positions per checkpointed chunk when accumulating the
            batch-mean assignment (K,); peak memory of the term is about chunk x K floats.
        fp32 (bool): compute distances, losses and codes in float32 under autocast
            (default True, as ``VectorQuantizer``).
    """

    def __init__(self,
                 codebook_size: int = 16384,
                 beta: float = 0.25,
                 entropy_loss_ratio: float = 0.05,
                 entropy_temperature: float = 0.01,
                 entropy_chunk_size: int = 1024,
                 fp32: bool = True):
        super().__init__()
        num_bits = int(round(math.log2(codebook_size))) if codebook_size > 0 else -1
        if num_bits < 1 or 2**num_bits != codebook_size:
            raise ValueError(f'LookupFreeQuantizer: codebook_size must be a power of two '
                             f'>= 2, got {codebook_size}')
        if entropy_chunk_size < 1:
            raise ValueError(f'entropy_chunk_size must be >= 1, got {entropy_chunk_size}')
        self.num_bits = num_bits
        self.beta = beta
        self.entropy_loss_ratio = entropy_loss_ratio
        self.entropy_temperature = entropy_temperature
        self.entropy_chunk_size = int(entropy_chunk_size)
        self.fp32 = bool(fp32)
        codes = index_to_bits(torch.arange(codebook_size), num_bits).float() * 2 - 1  # (K, k)
        self.register_buffer('codebook', codes, persistent=False)

    @property
    def codebook_size(self) -> int:
        return 2**self.num_bits

    @property
    def embed_dim(self) -> int:
        return self.num_bits

    def forward(self, z: Tensor) -> QuantizerOutput:
        """Quantise ``z`` (B, k, H, W); see :class:`QuantizerOutput` for the fields."""
        with fp32_region(z, enabled=self.fp32) as (z,):
            return self._quantize(z)

    def _quantize(self, z: Tensor) -> QuantizerOutput:
        b, c, h, w = z.shape
        if c != self.num_bits:
            raise ValueError(f'LookupFreeQuantizer over {self.num_bits} bits got {c} channels')
        x = z.permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, L, k)
        q = torch.where(x > 0, 1.0, -1.0).to(x.dtype)  # (B, L, k), zero maps to -1
        indices = bits_to_index(x > 0)  # (B, L)
        codebook = self.codebook.to(x.dtype)  # (K, k)
        d = -2 * torch.einsum('blc,kc->blk', x, codebook)  # (B, L, K)

        losses: Dict[str, Tensor] = {}
        if self.training:  # only a training step reads them (the entropy term is a collective)
            losses['loss_commit'] = self.beta * torch.mean((x - q.detach()) ** 2)
            if self.entropy_loss_ratio > 0:
                losses['loss_entropy'] = self.entropy_loss_ratio * lfq_entropy(
                    x.reshape(b * h * w, c), codebook, self.entropy_temperature,
                    self.entropy_chunk_size)

        z_q = x + (q - x).detach()  # straight-through: forward q, gradient to x
        z_q = z_q.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()  # (B, k, H, W)
        indices = indices.reshape(b, h, w)  # (B, H, W)
        metrics = code_usage_metrics(indices.detach(), self.codebook_size)
        return QuantizerOutput(z_q=z_q, indices=indices, d=d, losses=losses, metrics=metrics)

    def embed(self, indices: Tensor) -> Tensor:
        """Codes of indices (B, H, W) long -> z_q (B, k, H, W) in {-1, +1}."""
        codes = index_to_bits(indices, self.num_bits).to(self.codebook.dtype) * 2 - 1  # (B, H, W, k)
        return codes.permute(0, 3, 1, 2).contiguous()  # (B, k, H, W)

    def extra_repr(self) -> str:
        return (f'codebook_size={self.codebook_size}, embed_dim={self.embed_dim}, '
                f'beta={self.beta}, entropy_loss_ratio={self.entropy_loss_ratio}, '
                f'entropy_chunk_size={self.entropy_chunk_size}, fp32={self.fp32}')
