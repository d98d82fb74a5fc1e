"""Ablation: GEAR with the next-token loss reaching the tokenizer (straight-through end to end).

Everything is GEAR (``gear_model.py``) except the tokenizer phase's guidance, which adds

    st  = hard one-hot of argmin d, carrying the gradient of softmax(-d / tau)     (B, N, K)
    loss_ntp_st = ntp_weight * CE(AR(st[:, :-1], class), st)       prior frozen, eval mode

so the tokenizer is rewarded for token sequences its (frozen) AR predicts well, through both the
AR's inputs and the targets. REFERENCE.md: this is the variant that collapses the codebook
(gFID about 105); GEAR exists to avoid it. The prior phase is unchanged (hard, detached tokens).
"""
from typing import Dict, Tuple

import torch
from torch import Tensor

from gear.registry import MODELS, READOUTS

from .gear_model import GEAR


@MODELS.register_module()
class GEAREndToEnd(GEAR):
    """``GEAR`` whose tokenizer also minimises the AR's next-token loss (an ablation).

    Args:
        ntp_weight (float): weight of the straight-through next-token loss in the tokenizer loss.
        st_readout (dict): READOUTS config of the straight-through read-out.
        Everything else as ``GEAR``.
    """

    def __init__(self, *args, ntp_weight: float = 1.0,
                 st_readout: dict = dict(type='StraightThroughReadout', tau=0.1), **kwargs):
        super().__init__(*args, **kwargs)
        self.st_readout = READOUTS.build(st_readout)
        if not getattr(self.st_readout, 'returns_probs', False):
            raise ValueError(f'st_readout must return probabilities, got {st_readout}')
        self.ntp_weight = ntp_weight

    def guidance_losses(self, q, cond: Tensor, targets: Dict[str, Tensor]
                        ) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        losses, metrics = super().guidance_losses(q, cond, targets)
        st = self.st_readout(q.d)  # (B, N, K): forward one-hot, backward soft
        logits = self.prior.ar(st[:, :-1], cond).logits  # (B, N, K), position k predicts token k
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        losses['loss_ntp_st'] = self.ntp_weight * -(st * log_probs).sum(-1).mean()
        return losses, metrics
