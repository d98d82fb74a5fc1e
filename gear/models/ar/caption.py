"""Caption conditioning of the AR (text-to-image): a prefix of T caption tokens.

A frozen text encoder gives a caption as ``(emb (B, T, C_text), mask (B, T) bool)``, right-padded
to T = ``cls_token_num`` positions (``gear.models.text``). ``CaptionEmbedder`` projects it into
the AR's width with LlamaGen's T2I MLP (``cls_embedding.cap_proj.fc1`` -> GELU(tanh) -> ``fc2``)
and, in training, replaces whole captions by the null caption with probability
``dropout_prob`` (classifier-free guidance). The null caption is either

- ``'learned'`` (LlamaGen's ``uncond_embedding``: a (T, C_text) parameter, every position kept), or
- ``'empty'`` (the official GEAR T2I release: the encoder's embedding of the empty string "",
  and its mask; a persistent buffer the stage model fills from its text encoder with
  ``set_null_caption``, so checkpoints carry it).

Attention with a caption prefix (``caption_attn_mask``): causal, and no query attends to a padded
caption column, except that every position attends to itself (so a padded prefix row never
softmaxes over nothing: the official release's diagonal guard). Image positions therefore see
the valid caption tokens and earlier image tokens. Padded prefix positions embed to zero, so
nothing depends on what the encoder left there. The hidden state at position T - 1 + k still
predicts (and is aligned to) image token k, as with one class token.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NULL_CAPTIONS = ('learned', 'empty')
Caption = Tuple[Tensor, Tensor]  # (emb (B, T, C_text) float, mask (B, T) bool)


class CaptionMLP(nn.Module):
    """``fc2(gelu_tanh(fc1(x)))``: caption width -> AR width (LlamaGen's ``cap_proj``)."""

    def __init__(self, in_dim: int, dim: int, bias: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, dim, bias=bias)
        self.fc2 = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate='tanh'))


class CaptionEmbedder(nn.Module):
    """Caption hidden states -> the AR's prefix embeddings, with caption dropout for CFG.

    Args:
        caption_dim: C_text, the text encoder's hidden size.
        dim: the AR width.
        token_num: T, the caption prefix length (the AR's ``cls_token_num``).
        dropout_prob: probability of replacing a caption by the null caption in training.
        null_caption: 'learned' or 'empty' (see the module docstring).
        bias: biases in the MLP (LlamaGen: True; the official GEAR T2I release: False).
    """

    def __init__(self, caption_dim: int, dim: int, token_num: int, dropout_prob: float,
                 null_caption: str = 'learned', bias: bool = True):
        super().__init__()
        if null_caption not in NULL_CAPTIONS:
            raise ValueError(f'null_caption must be one of {NULL_CAPTIONS}, got {null_caption!r}')
        self.caption_dim, self.token_num = caption_dim, token_num
        self.dropout_prob, self.null_caption = dropout_prob, null_caption
        self.cap_proj = CaptionMLP(caption_dim, dim, bias)
        if null_caption == 'learned':
            self.uncond_embedding = nn.Parameter(
                torch.randn(token_num, caption_dim) / caption_dim ** 0.5)  # (T, C_text)
            self.register_buffer('null_mask', torch.ones(token_num, dtype=torch.bool),
                                 persistent=False)  # (T,)
        else:  # filled by set_null_caption from the text encoder's "" embedding
            self.register_buffer('null_emb', torch.zeros(token_num, caption_dim))  # (T, C_text)
            self.register_buffer('null_mask', torch.zeros(token_num, dtype=torch.bool))  # (T,)

    def set_null_caption(self, emb: Tensor, mask: Tensor) -> None:
        """The 'empty' null caption: the encoder's output for "" ((1, T, C_text), (1, T))."""
        if self.null_caption != 'empty':
            raise ValueError("set_null_caption is for null_caption='empty'")
        with torch.no_grad():
            self.null_emb.copy_(emb.reshape(self.null_emb.shape))
            self.null_mask.copy_(mask.reshape(self.null_mask.shape))

    def null(self, batch: int) -> Caption:
        """The null caption repeated ``batch`` times: ((B, T, C_text), (B, T))."""
        emb = self.uncond_embedding if self.null_caption == 'learned' else self.null_emb
        return emb[None].expand(batch, -1, -1), self.null_mask[None].expand(batch, -1)

    def check(self, caption) -> Caption:
        """``caption`` as (emb, mask) of this embedder's shape, or a ValueError saying why."""
        if not (isinstance(caption, (tuple, list)) and len(caption) == 2):
            raise ValueError('a caption-conditioned AR takes cond=(emb (B, T, C), mask (B, T)) '
                             f'from a text encoder, got {type(caption).__name__}')
        emb, mask = caption
        if emb.dim() != 3 or tuple(emb.shape[1:]) != (self.token_num, self.caption_dim) \
                or tuple(mask.shape) != tuple(emb.shape[:2]):
            raise ValueError(f'caption emb {tuple(emb.shape)} / mask {tuple(mask.shape)} do not '
                             f'match the AR: (B, cls_token_num={self.token_num}, caption_dim='
                             f'{self.caption_dim}); the text encoder max_length and hidden size '
                             'must equal them')
        return emb, mask.bool()

    def forward(self, caption: Caption, drop_mask: Optional[Tensor] = None
                ) -> Tuple[Tensor, Tensor]:
        """-> prefix (B, T, dim) and its kept columns (B, T) bool; ``drop_mask`` (B,) forces the
        null caption (in any mode), else it is drawn with ``dropout_prob`` in training."""
        emb, mask = self.check(caption)
        bsz = emb.shape[0]
        if drop_mask is None and self.training and self.dropout_prob > 0:
            drop_mask = torch.rand(bsz, device=emb.device) < self.dropout_prob  # (B,)
        if drop_mask is not None:
            null_emb, null_mask = self.null(bsz)
            drop = drop_mask.to(emb.device).bool()
            emb = torch.where(drop[:, None, None], null_emb.to(emb.dtype), emb)  # (B, T, C_text)
            mask = torch.where(drop[:, None], null_mask, mask)  # (B, T)
        prefix = self.cap_proj(emb.to(self.cap_proj.fc1.weight.dtype))  # (B, T, dim)
        # padded positions are zero whatever the encoder put there: no output depends on them
        return prefix.masked_fill(~mask[..., None], 0.0), mask  # (B, T, dim), (B, T)


def caption_attn_mask(keep: Tensor, q_pos: Tensor, kv_len: int) -> Tensor:
    """Boolean attention mask (B, 1, S, kv_len) (True = attend) for queries at ``q_pos`` (S,):
    causal, no padded caption column (``keep`` (B, T) False), each position sees itself."""
    bsz, t = keep.shape
    cols = torch.arange(kv_len, device=keep.device)  # (K,)
    kept = torch.ones(bsz, kv_len, dtype=torch.bool, device=keep.device)  # (B, K)
    kept[:, :min(t, kv_len)] = keep[:, :kv_len]
    causal = cols[None] <= q_pos[:, None]  # (S, K)
    diag = cols[None] == q_pos[:, None]  # (S, K)
    return ((causal[None] & kept[:, None]) | diag[None])[:, None]  # (B, 1, S, K)


def cond_batch_size(cond) -> int:
    """Batch size of a class cond (B,) or a caption (emb (B, T, C), mask (B, T))."""
    return cond[0].shape[0] if isinstance(cond, (tuple, list)) else cond.shape[0]


def cond_device(cond) -> torch.device:
    return cond[0].device if isinstance(cond, (tuple, list)) else cond.device


def with_null(model: nn.Module, cond):
    """``cond`` followed by as many null conditions (2B rows): CFG's doubled batch."""
    bsz = cond_batch_size(cond)
    if getattr(model, 'caption_dim', None) is None:
        return torch.cat([cond, torch.full_like(cond, model.num_classes)])  # (2B,)
    emb, mask = model.cls_embedding.check(cond)
    null_emb, null_mask = model.cls_embedding.null(bsz)
    return (torch.cat([emb, null_emb.to(emb.device, emb.dtype)]),  # (2B, T, C_text)
            torch.cat([mask, null_mask.to(mask.device)]))  # (2B, T)
