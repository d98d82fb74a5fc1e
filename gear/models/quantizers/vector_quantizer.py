"""LlamaGen's vector quantizer with an l2-normalised codebook (VQ-16 / VQ-8).

With ``l2_norm=True`` both z and the codes live on the unit sphere, so the squared distance is
``d = 2 - 2 cos`` in [0, 4]. ``d`` is built from differentiable ops on z and on the codebook, so
the soft read-out ``softmax(-d / tau)`` sends gradient to the encoder and to the codebook; the
hard path (``indices``, ``z_q``) is the usual straight-through estimator.

The losses (codebook, commitment, entropy) are computed in training mode only, as in the
released code: a frozen tokenizer (stage 2), validation and evaluation never pay for the entropy
term's softmax over (B, L, K), and never run its cross-rank all-reduce on a path that only some
ranks take.
"""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gear.registry import QUANTIZERS
from gear.models.losses.precision import fp32_region
from .base import QuantizerOutput, code_usage_metrics, entropy_regularizer


@QUANTIZERS.register_module()
class VectorQuantizer(nn.Module):
    """Nearest-code vector quantizer with codebook, commitment and entropy losses.

    Args:
        codebook_size (int): number of codes K.
        embed_dim (int): code dimension C (channels of the input z).
        l2_norm (bool): l2-normalise z and the codes before the lookup (LlamaGen default).
        beta (float): weight of the commitment loss ``mean((sg[z_q] - z)^2)``.
        entropy_loss_ratio (float): weight of the entropy regulariser; 0 omits the term.
        entropy_temperature (float): the regulariser's assignment is ``softmax(-d / T)``.
        codebook_loss_weight (float): weight of the codebook loss ``mean((z_q - sg[z])^2)``.
        fp32 (bool): compute distances, losses and the read-out in float32 under autocast
            (default True; False lets them run in the autocast dtype, for experiments).
    """

    def __init__(self,
                 codebook_size: int,
                 embed_dim: int,
                 l2_norm: bool = True,
                 beta: float = 0.25,
                 entropy_loss_ratio: float = 0.05,
                 entropy_temperature: float = 0.01,
                 codebook_loss_weight: float = 1.0,
                 fp32: bool = True):
        super().__init__()
        self.fp32 = bool(fp32)
        self.l2_norm = l2_norm
        self.beta = beta
        self.entropy_loss_ratio = entropy_loss_ratio
        self.entropy_temperature = entropy_temperature
        self.codebook_loss_weight = codebook_loss_weight
        self.embedding = nn.Embedding(codebook_size, embed_dim)
        # LlamaGen's init: uniform(-1/K, 1/K), then projected onto the unit sphere.
        with torch.no_grad():
            self.embedding.weight.uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
            if l2_norm:
                self.embedding.weight.copy_(F.normalize(self.embedding.weight, p=2, dim=-1))

    @property
    def codebook_size(self) -> int:
        return self.embedding.num_embeddings

    @property
    def embed_dim(self) -> int:
        return self.embedding.embedding_dim

    def codebook(self) -> Tensor:
        """The codes used for lookup, (K, C): normalised when ``l2_norm``."""
        weight = self.embedding.weight.float() if self.fp32 else self.embedding.weight
        return F.normalize(weight, p=2, dim=-1) if self.l2_norm else weight

    def forward(self, z: Tensor) -> QuantizerOutput:
        """Quantise ``z`` (B, C, H, W); see :class:`QuantizerOutput` for the fields.

        With ``fp32`` (default) it runs in float32 even under autocast: in bfloat16 the distances
        (values in [0, 4]) keep about two significant digits, too few for the argmin over 16384
        codes or for the soft read-out ``softmax(-d / tau)``.
        """
        with fp32_region(z, enabled=self.fp32) as (z,):
            return self._quantize(z)

    def _quantize(self, z: Tensor) -> QuantizerOutput:
        b, c, h, w = z.shape
        z = z.permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, L, C)
        if self.l2_norm:
            z = F.normalize(z, p=2, dim=-1)
        codebook = self.codebook()  # (K, C)
        # ||z||^2 + ||e||^2 - 2 z.e, as LlamaGen computes it (same rounding, same argmin)
        d = (z.pow(2).sum(-1, keepdim=True) + codebook.pow(2).sum(-1)
             - 2 * torch.einsum('blc,kc->blk', z, codebook))  # (B, L, K)
        indices = d.argmin(dim=-1)  # (B, L)
        z_q = codebook[indices]  # (B, L, C)

        losses: Dict[str, Tensor] = {}
        if self.training:  # only a training step reads them (the entropy term is a collective)
            losses['loss_codebook'] = self.codebook_loss_weight * torch.mean((z_q - z.detach()) ** 2)
            losses['loss_commit'] = self.beta * torch.mean((z_q.detach() - z) ** 2)
            if self.entropy_loss_ratio > 0:
                losses['loss_entropy'] = self.entropy_loss_ratio * entropy_regularizer(
                    d, self.entropy_temperature)

        z_q = z + (z_q - z).detach()  # straight-through: forward z_q, gradient to z
        z_q = z_q.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)
        indices = indices.reshape(b, h, w)  # (B, H, W)
        metrics = code_usage_metrics(indices.detach(), self.codebook_size)
        return QuantizerOutput(z_q=z_q, indices=indices, d=d, losses=losses, metrics=metrics)

    def embed(self, indices: Tensor) -> Tensor:
        """Look up codes: indices (B, H, W) long -> z_q (B, C, H, W)."""
        z_q = self.codebook()[indices]  # (B, H, W, C)
        return z_q.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)

    def extra_repr(self) -> str:
        return (f'codebook_size={self.codebook_size}, embed_dim={self.embed_dim}, '
                f'l2_norm={self.l2_norm}, beta={self.beta}, '
                f'entropy_loss_ratio={self.entropy_loss_ratio}, fp32={self.fp32}')
