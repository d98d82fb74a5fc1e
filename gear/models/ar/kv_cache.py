"""Static key/value cache for KV-cache decoding (gpt-fast / LlamaGen style).

One ``KVCache`` per attention layer holds keys and values of every position decoded so far, in
preallocated (B, H, S_max, D) buffers written in place at ``input_pos``. The buffers are not
persistent: they never enter a state dict, so a checkpoint saved mid-sampling stays clean.
"""
import torch
from torch import Tensor, nn


class KVCache(nn.Module):
    """Preallocated keys and values of one attention layer.

    Args:
        max_batch_size: batch rows the cache holds (twice the images when CFG doubles the batch).
        max_seq_length: positions the cache holds (class tokens + image tokens).
        n_head: attention heads.
        head_dim: per-head width.
        dtype: storage dtype (the model's compute dtype).
    """

    def __init__(self, max_batch_size: int, max_seq_length: int, n_head: int, head_dim: int,
                 dtype: torch.dtype = torch.float32, device=None):
        super().__init__()
        shape = (max_batch_size, n_head, max_seq_length, head_dim)
        self.register_buffer('k_cache', torch.zeros(shape, dtype=dtype, device=device),
                             persistent=False)
        self.register_buffer('v_cache', torch.zeros(shape, dtype=dtype, device=device),
                             persistent=False)

    def update(self, input_pos: Tensor, k_val: Tensor, v_val: Tensor):
        """Write ``k_val``/``v_val`` (B, H, S, D) at ``input_pos`` (S,); return the full caches.

        Returns the (B, H, S_max, D) buffers sliced to the batch of ``k_val``; positions not
        written yet hold zeros and must be masked by the caller.
        """
        if input_pos.shape[0] != k_val.shape[2]:
            raise ValueError(f'input_pos has {input_pos.shape[0]} positions, '
                             f'k has {k_val.shape[2]}')
        bsz = k_val.shape[0]
        if bsz > self.k_cache.shape[0]:
            raise ValueError(f'batch {bsz} exceeds the cache size {self.k_cache.shape[0]}; '
                             'call setup_caches with a larger max_batch_size')
        self.k_cache[:bsz, :, input_pos] = k_val.to(self.k_cache.dtype)  # (B, H, S, D)
        self.v_cache[:bsz, :, input_pos] = v_val.to(self.v_cache.dtype)  # (B, H, S, D)
        return self.k_cache[:bsz], self.v_cache[:bsz]  # (B, H, S_max, D)
