"""Building blocks of LlamaGen's GPT: class embedder, RMSNorm, SwiGLU, attention, block.

Module and parameter names equal LlamaGen's (``autoregressive/models/gpt.py``), so released
checkpoints load with no renaming: ``cls_embedding.embedding_table``, ``layers.N.attention.wqkv``,
``attention.wo``, ``feed_forward.w1/w2/w3``, ``attention_norm``, ``ffn_norm``.

``compiled_block(**kwargs)`` is one ``torch.compile``d function ``(block, x, freqs_cis, mask) -> x``
shared by every block of every model (nn.Module inlining lets its graph serve all identical
blocks; nothing compiled is stored on a module, so ``deepcopy`` (EMA) stays safe).
"""
import functools
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .rope import apply_rotary_emb


def find_multiple(n: int, k: int) -> int:
    """Round ``n`` up to a multiple of ``k``."""
    return n if n % k == 0 else n + k - (n % k)


class DropPath(nn.Module):
    """Stochastic depth per sample (timm's ``DropPath``, scale by ``1 / keep``)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)  # (B, 1, 1)
        return x * mask / keep


class LabelEmbedder(nn.Module):
    """Class labels -> one embedding; row ``num_classes`` is the null class used for CFG.

    In training, each label is replaced by the null class with probability ``dropout_prob``;
    ``drop_mask`` (B,) bool forces the replacement (in any mode).
    """

    def __init__(self, num_classes: int, dim: int, dropout_prob: float):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, dim)  # last row: the null class
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob

    def forward(self, labels: Tensor, drop_mask: Optional[Tensor] = None) -> Tensor:
        if drop_mask is None and self.training and self.dropout_prob > 0:
            drop_mask = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
        if drop_mask is not None:
            labels = torch.where(drop_mask.to(labels.device).bool(), self.num_classes, labels)
        return self.embedding_table(labels)[:, None]  # (B, 1, dim)


class RMSNorm(nn.Module):
    """RMSNorm computed in float32 and cast back, then scaled (as LlamaGen)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        out = xf * torch.rsqrt(torch.mean(xf * xf, dim=-1, keepdim=True) + self.eps)
        return out.type_as(x) * self.weight


class FeedForward(nn.Module):
    """SwiGLU ``w2(silu(w1 x) * w3 x)``, hidden find_multiple(int(8 * dim / 3), multiple_of)."""

    def __init__(self, dim: int, multiple_of: int = 256, dropout_p: float = 0.0):
        super().__init__()
        hidden = find_multiple(int(2 * 4 * dim / 3), multiple_of)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.ffn_dropout = nn.Dropout(dropout_p)

    def forward(self, x: Tensor) -> Tensor:
        return self.ffn_dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class Attention(nn.Module):
    """Causal multi-head self-attention with fused bias-free ``wqkv``, 2D RoPE and a KV cache."""

    def __init__(self, dim: int, n_head: int, attn_dropout_p: float = 0.0,
                 resid_dropout_p: float = 0.0):
        super().__init__()
        if dim % n_head != 0:
            raise ValueError(f'dim {dim} is not divisible by n_head {n_head}')
        self.dim, self.n_head, self.head_dim = dim, n_head, dim // n_head
        self.wqkv = nn.Linear(dim, 3 * dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)
        self.attn_dropout_p = attn_dropout_p
        self.resid_dropout = nn.Dropout(resid_dropout_p)
        self.kv_cache = None  # a KVCache while decoding (set by LlamaGenGPT.setup_caches)

    def forward(self, x: Tensor, freqs_cis: Tensor, input_pos: Optional[Tensor] = None,
                mask: Optional[Tensor] = None, kv_len: Optional[int] = None) -> Tensor:
        """``kv_len`` (KV-cache decoding): attend to cache positions ``[0, kv_len)`` only, the
        ones written so far (``mask`` then covers those); None reads the whole cache."""
        bsz, seqlen, _ = x.shape
        q, k, v = self.wqkv(x).split(self.dim, dim=-1)  # 3 x (B, S, dim)
        q = q.view(bsz, seqlen, self.n_head, self.head_dim)  # (B, S, H, D)
        k = k.view(bsz, seqlen, self.n_head, self.head_dim)  # (B, S, H, D)
        v = v.view(bsz, seqlen, self.n_head, self.head_dim)  # (B, S, H, D)
        q, k = apply_rotary_emb(q, freqs_cis), apply_rotary_emb(k, freqs_cis)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, S, D)
        if self.kv_cache is not None and input_pos is not None:
            k, v = self.kv_cache.update(input_pos, k, v)  # (B, H, S_max, D)
            if kv_len is not None:
                k, v = k[:, :, :kv_len], v[:, :, :kv_len]  # (B, H, kv_len, D)
            k, v = k.to(q.dtype), v.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None,
            dropout_p=self.attn_dropout_p if self.training else 0.0)  # (B, H, S, D)
        out = out.transpose(1, 2).reshape(bsz, seqlen, self.dim)  # (B, S, dim)
        return self.resid_dropout(self.wo(out))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``h = x + attn(norm(x)); out = h + ffn(norm(h))``, with drop path."""

    def __init__(self, dim: int, n_head: int, multiple_of: int = 256, norm_eps: float = 1e-5,
                 attn_dropout_p: float = 0.0, resid_dropout_p: float = 0.0,
                 ffn_dropout_p: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.attention = Attention(dim, n_head, attn_dropout_p, resid_dropout_p)
        self.feed_forward = FeedForward(dim, multiple_of, ffn_dropout_p)
        self.attention_norm = RMSNorm(dim, eps=norm_eps)
        self.ffn_norm = RMSNorm(dim, eps=norm_eps)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, freqs_cis: Tensor, input_pos: Optional[Tensor] = None,
                mask: Optional[Tensor] = None, kv_len: Optional[int] = None) -> Tensor:
        h = x + self.drop_path(self.attention(self.attention_norm(x), freqs_cis, input_pos, mask,
                                              kv_len))
        return h + self.drop_path(self.feed_forward(self.ffn_norm(h)))


def _block_forward(block: 'TransformerBlock', x: Tensor, freqs_cis: Tensor,
                   mask: Optional[Tensor] = None) -> Tensor:
    return block(x, freqs_cis, None, mask)  # (B, S, dim)


@functools.lru_cache(maxsize=None)
def _compiled(kwargs_items: tuple):
    return torch.compile(_block_forward, **dict(kwargs_items))


def compiled_block(**kwargs):
    """The ``torch.compile``d ``(block, x, freqs_cis, mask) -> x`` for these compile kwargs
    (cached); ``mask`` None is causal."""
    return _compiled(tuple(sorted(kwargs.items())))
