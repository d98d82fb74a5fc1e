"""What every AR backbone returns."""
from dataclasses import dataclass
from typing import Optional

from torch import Tensor


@dataclass
class ARBackboneOutput:
    """Output of an AR backbone's ``forward``.

    Attributes:
        logits: (B, T, V) float32 next-token logits, position k predicting image token k;
            None with ``early_exit``.
        hidden: (B, T, dim) residual stream after ``return_hidden_at`` blocks (before the
            final norm), at the same T positions as ``logits``; None unless requested.
    """
    logits: Optional[Tensor] = None
    hidden: Optional[Tensor] = None
