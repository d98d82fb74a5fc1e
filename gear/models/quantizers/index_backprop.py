"""IBQ's index-backpropagation quantizer (TencentARC SEED-Voken ``IndexPropagationQuantize``).

The codebook E (K x C) is learnt and nothing is normalised. Every position scores every code by
the inner product ``logits = <z, e_k>``; the distance handed to GEAR's read-outs is
``d = -logits`` (lower is closer), so ``softmax(-d / tau)`` is IBQ's soft assignment at
temperature ``tau``. The hard token is ``argmax logits = argmin d``.

Index backpropagation: the one-hot of the hard token is made straight-through with the soft
posterior ``p = softmax(logits)`` (temperature 1, as in IBQ):

    one_hot = hard - sg(p) + p          z_q = one_hot @ E                         # (B, L, C)

so z_q equals the hard code in value while its gradient reaches z *and every code* through p
(a plain VQ straight-through reaches z only). gear computes it as
``E[indices] + (p - sg(p)) @ E``: the same gradients, and z_q equals the code exactly (IBQ's
``(1 - p) + p`` rounds in the last bit).

Losses (training mode only, like ``VectorQuantizer``), whose sum is IBQ's ``quant_loss``:
    loss_index_backprop = mean((z_q - z)^2)               z_q straight-through: reaches z and E
    loss_commit         = mean((sg(e_idx) - z)^2)         reaches z
    loss_codebook       = beta * mean((e_idx - sg(z))^2)  reaches E
    loss_entropy        = entropy_loss_ratio * entropy_regularizer(d, entropy_temperature)
Note that IBQ puts ``beta`` on the codebook term and weight 1 on the commitment term (the
opposite of LlamaGen's VQ).
"""
from typing import Dict

import torch
from torch import Tensor, nn

from gear.registry import QUANTIZERS
from gear.models.losses.precision import fp32_region
from .base import QuantizerOutput, code_usage_metrics, entropy_regularizer


@QUANTIZERS.register_module()
class IndexBackpropQuantizer(nn.Module):
    """Inner-product quantizer with a learnt codebook and index backpropagation (IBQ).

    Args:
        codebook_size (int): number of codes K (IBQ-16: 16384).
        embed_dim (int): code dimension C (channels of the input z; IBQ-16: 256).
        beta (float): weight of the codebook term ``mean((e_idx - sg[z])^2)`` (IBQ: 0.25).
        entropy_loss_ratio (float): weight of the entropy regulariser (IBQ's
            ``entropy_loss_weight``, 0.05); 0 omits the term.
        entropy_temperature (float): the regulariser's assignment is ``softmax(-d / T)``
            (= IBQ's ``softmax(logits / T)``).
        fp32 (bool): compute logits, losses and the read-out in float32 under autocast
            (default True; False lets them run in the autocast dtype, for experiments).
    """

    def __init__(self,
                 codebook_size: int,
                 embed_dim: int,
                 beta: float = 0.25,
                 entropy_loss_ratio: float = 0.05,
                 entropy_temperature: float = 0.01,
                 fp32: bool = True):
        super().__init__()
        self.fp32 = bool(fp32)
        self.beta = beta
        self.entropy_loss_ratio = entropy_loss_ratio
        self.entropy_temperature = entropy_temperature
        # IBQ keeps nn.Embedding's own init, normal(0, 1) (no uniform(-1/K, 1/K) as in VQ).
        self.embedding = nn.Embedding(codebook_size, embed_dim)

    @property
    def codebook_size(self) -> int:
        return self.embedding.num_embeddings

    @property
    def embed_dim(self) -> int:
        return self.embedding.embedding_dim

    def codebook(self) -> Tensor:
        """The codes, (K, C) (float32 when ``fp32``)."""
        return self.embedding.weight.float() if self.fp32 else self.embedding.weight

    def forward(self, z: Tensor) -> QuantizerOutput:
        """Quantise ``z`` (B, C, H, W); see :class:`QuantizerOutput` for the fields."""
        with fp32_region(z, enabled=self.fp32) as (z,):
            return self._quantize(z)

    def _quantize(self, z: Tensor) -> QuantizerOutput:
        b, c, h, w = z.shape
        z = z.permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, L, C)
        codebook = self.codebook()  # (K, C)
        logits = torch.einsum('blc,kc->blk', z, codebook)  # (B, L, K)
        d = -logits  # (B, L, K), lower is closer
        indices = d.argmin(dim=-1)  # (B, L)
        soft = logits.softmax(dim=-1)  # (B, L, K), the posterior whose gradient the hard codes take
        z_hard = codebook[indices]  # (B, L, C) = hard one-hot @ E
        z_q = z_hard + torch.einsum('blk,kc->blc', soft - soft.detach(), codebook)  # (B, L, C)

        losses: Dict[str, Tensor] = {}
        if self.training:  # only a training step reads them (the entropy term is a collective)
            losses['loss_index_backprop'] = torch.mean((z_q - z) ** 2)
            losses['loss_commit'] = torch.mean((z_hard.detach() - z) ** 2)
            losses['loss_codebook'] = self.beta * torch.mean((z_hard - z.detach()) ** 2)
            if self.entropy_loss_ratio > 0:
                losses['loss_entropy'] = self.entropy_loss_ratio * entropy_regularizer(
                    d, self.entropy_temperature)

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
                f'beta={self.beta}, entropy_loss_ratio={self.entropy_loss_ratio}, fp32={self.fp32}')
