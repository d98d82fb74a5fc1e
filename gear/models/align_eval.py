"""Per-image AR-vs-teacher alignment (mean patch cosine after the trained projector)."""
from typing import Dict

import torch
from torch import Tensor

from .align.repa import patch_cosine


@torch.no_grad()
def per_sample_alignment(align_loss, hidden: Tensor, targets: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """{teacher: (B,)} mean cosine over patches between ``projector(hidden)`` and the target."""
    return {name: patch_cosine(proj(hidden), targets[name]).mean(1)  # (B, N) -> (B,)
            for name, proj in align_loss.projectors.items()}
