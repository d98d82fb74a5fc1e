"""Diagnostics of the codebook assignment ``softmax(-d / tau)``: how peaked it is.

GEAR's claim is that the tokenizer learns lower-entropy, easier-to-predict assignments; these
are the numbers that show it, logged next to codebook usage.
"""
from typing import Dict

import torch
from torch import Tensor


@torch.no_grad()
def assignment_stats(d: Tensor, tau: float) -> Dict[str, Tensor]:
    """Mean per-position entropy (nats) and top-1 mass of ``softmax(-d / t)`` for t = 1
    ("natural") and t = tau ("soft", what the alignment branch sees). d: (B, L, K)."""
    stats = {}
    for name, t in (('natural', 1.0), ('soft', tau)):
        logp = torch.log_softmax(-d.float() / t, dim=-1)  # (B, L, K)
        p = logp.exp()
        stats[f'assign/{name}_entropy'] = -(p * logp).sum(-1).mean()
        stats[f'assign/{name}_top1'] = p.max(-1).values.mean()
    return stats
