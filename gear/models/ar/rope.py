"""2D rotary embedding of LlamaGen's GPT: ``precompute_freqs_cis_2d``, ``apply_rotary_emb``.

Each head's dimension is split in two halves: the first half rotates with the token's grid row,
the second with its column (base 10000, as LlamaGen). Rotations act on adjacent pairs
``(x[2i], x[2i+1])``. The table is stored as ``(cos, sin)`` pairs, shape (T, head_dim // 2, 2).

Class-token positions: REFERENCE.md says they get the identity rotation, but LlamaGen's code
(and the released GEAR code, which the golden fixture ``ar_small.pt`` was produced with)
prepends ZEROS (cos = sin = 0), so the class tokens' queries and keys are zeroed: every
position attends to the class token with score 0, and the class token's own query is zero
(uniform attention over its prefix). The released checkpoints were trained this way, so gear
reproduces it: ``ar_small.pt`` matches only with zeros (the identity rotation misses by ~1e-2).
``cls_rotation='identity'`` is kept for experiments only.
"""
import torch
from torch import Tensor


def precompute_freqs_cis_2d(grid_size: int, head_dim: int, base: float = 10000,
                            cls_token_num: int = 1, cls_rotation: str = 'zeros') -> Tensor:
    """The rotation table for ``cls_token_num`` class tokens followed by a row-major grid.

    Returns:
        float32 tensor (cls_token_num + grid_size ** 2, head_dim // 2, 2) of (cos, sin).
    """
    if cls_rotation not in ('zeros', 'identity'):
        raise ValueError(f"cls_rotation must be 'zeros' or 'identity', got {cls_rotation!r}")
    half_dim = head_dim // 2
    freqs = 1.0 / (base ** (torch.arange(0, half_dim, 2)[: (half_dim // 2)].float() / half_dim))
    t = torch.arange(grid_size, dtype=torch.float32)
    freqs = torch.outer(t, freqs)  # (G, head_dim // 4)
    freqs_grid = torch.cat([
        freqs[:, None, :].expand(-1, grid_size, -1),  # rows: (G, G, head_dim // 4)
        freqs[None, :, :].expand(grid_size, -1, -1),  # columns: (G, G, head_dim // 4)
    ], dim=-1)  # (G, G, head_dim // 2)
    cache = torch.stack([torch.cos(freqs_grid), torch.sin(freqs_grid)], dim=-1)  # (G, G, hd/2, 2)
    cache = cache.flatten(0, 1)  # (G * G, head_dim // 2, 2)
    cls = torch.zeros(cls_token_num, head_dim // 2, 2)  # (C, head_dim // 2, 2)
    if cls_rotation == 'identity':
        cls[..., 0] = 1.0  # cos = 1, sin = 0
    return torch.cat([cls, cache])  # (C + G * G, head_dim // 2, 2)


def apply_rotary_emb(x: Tensor, freqs_cis: Tensor) -> Tensor:
    """Rotate ``x`` (B, S, H, D) by ``freqs_cis`` (S, D // 2, 2) or (B, S, D // 2, 2) in fp32."""
    xshaped = x.float().reshape(*x.shape[:-1], -1, 2)  # (B, S, H, D // 2, 2)
    if freqs_cis.dim() == 3:
        freqs_cis = freqs_cis[None]  # (1, S, D // 2, 2)
    freqs_cis = freqs_cis[:, :, None]  # (B or 1, S, 1, D // 2, 2)
    out = torch.stack([
        xshaped[..., 0] * freqs_cis[..., 0] - xshaped[..., 1] * freqs_cis[..., 1],
        xshaped[..., 1] * freqs_cis[..., 0] + xshaped[..., 0] * freqs_cis[..., 1],
    ], dim=-1)  # (B, S, H, D // 2, 2)
    return out.flatten(3).type_as(x)  # (B, S, H, D)
