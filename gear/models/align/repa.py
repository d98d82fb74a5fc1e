"""REPA alignment loss: projector MLP + negative cosine to frozen teacher patch features.

``REPALoss(hidden, targets)`` pulls the AR hidden state at the position that predicts patch k
(after a per-teacher projector) toward teacher feature k, by negative cosine similarity
averaged over patches and batch, then over teachers (REFERENCE.md, "Alignment"). Targets are
detached (stop-gradient); gradients reach ``hidden`` and the projectors. The loss and the
diagnostics come back in separate dicts, so a metric can never leak into a total.
"""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gear.registry import ALIGN_LOSSES

from .projector import Projector


def patch_cosine(pred: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-patch cosine similarity, computed in float32: (B, N, C), (B, N, C) -> (B, N)."""
    return F.cosine_similarity(pred.float(), target.float(), dim=-1, eps=eps)  # (B, N)


@ALIGN_LOSSES.register_module()
class REPALoss(nn.Module):
    """Multi-teacher REPA loss with one trainable projector per teacher.

    ``loss = loss_weight * mean_t( -mean_{b, n} cos(proj_t(hidden)[b, n], target_t[b, n]) )``.

    Args:
        hidden_dim (int): the AR hidden size D (input of every projector).
        teachers (dict): teacher name -> its feature size C; one projector each, kept in the
            ``nn.ModuleDict`` ``projectors`` under the same names.
        projector_hidden_dim (int): the projector MLP width (2048 in GEAR).
        loss_weight (float): scale of the returned loss (GEAR's ``lambda`` / ``lambda_ar`` may be
            applied here or by the caller; 1.0 leaves it to the caller).
    """

    injected_args = ('hidden_dim', 'teachers')  # filled in by ``Prior`` from the AR and teachers

    def __init__(self, hidden_dim: int, teachers: Dict[str, int], projector_hidden_dim: int = 2048,
                 loss_weight: float = 1.0):
        super().__init__()
        if not teachers:
            raise ValueError('REPALoss needs at least one teacher: teachers={name: feature_dim}')
        self.hidden_dim = hidden_dim
        self.loss_weight = float(loss_weight)
        self.teacher_dims = {str(k): int(v) for k, v in dict(teachers).items()}
        self.projectors = nn.ModuleDict({
            name: Projector(hidden_dim, dim, projector_hidden_dim)
            for name, dim in self.teacher_dims.items()})

    def forward(self, hidden: Tensor, targets: Dict[str, Tensor]
                ) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Alignment loss of ``hidden`` (B, N, D) to ``targets`` {name: (B, N, C)}.

        Returns:
            (loss, metrics): the scalar loss (weighted, mean over teachers) and a separate dict
            of detached diagnostics ``cos/{name}`` (mean cosine per teacher).
        """
        missing = [n for n in self.projectors if n not in targets]
        if missing:
            raise KeyError(f'REPALoss: no target for teacher(s) {missing}; got {list(targets)}')
        if hidden.dim() != 3 or hidden.shape[-1] != self.hidden_dim:
            raise ValueError(f'REPALoss: hidden must be (B, N, {self.hidden_dim}), '
                             f'got {tuple(hidden.shape)}')
        losses, metrics = [], {}
        for name, projector in self.projectors.items():
            target = targets[name].detach()
            expected = (*hidden.shape[:2], self.teacher_dims[name])
            if tuple(target.shape) != expected:
                raise ValueError(
                    f"REPALoss: teacher '{name}' target shape {tuple(target.shape)} does not match "
                    f'hidden shape {tuple(hidden.shape)} (expected target {expected}: same batch '
                    f'and number of patches N, feature size {self.teacher_dims[name]})')
            cos = patch_cosine(projector(hidden), target)  # (B, N)
            losses.append(-cos.mean())
            metrics[f'cos/{name}'] = cos.detach().mean()
        loss = self.loss_weight * torch.stack(losses).mean()
        return loss, metrics
