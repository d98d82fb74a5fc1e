"""The prior: AR backbone + alignment projectors, stepped together as the ``prior`` group.

Two read-outs of one codebook assignment enter the same AR:
- ``ntp_and_align(tokens)`` (also ``forward``, so DDP / DeepSpeed handles run it): hard indices
  (B, N); next-token cross-entropy over the full AR and the alignment of the hidden state after
  ``align_depth`` blocks (GEAR step 3, stage 2).
- ``align(probs)``: soft probabilities (B, N, K) embedded as ``probs @ E``; the AR runs only up
  to ``align_depth`` blocks (early exit: identical hidden state and gradients, fewer FLOPs) and
  returns the alignment loss (GEAR step 1, where the caller freezes the prior).
Hidden position k has seen the class token and tokens < k and is aligned to teacher patch k.

``build_prior`` builds it for a tokenizer and its teachers (stage 1, stage 2 and the baseline);
the prior's optimizer phase is ``gear.models.phases.prior_step``.
"""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gear.registry import ALIGN_ENCODERS, ALIGN_LOSSES, AR_BACKBONES


class Prior(nn.Module):
    """AR backbone + REPA projectors.

    Args:
        ar (dict): AR_BACKBONES config (``LlamaGenGPT``); its ``vocab_size`` must equal the
            tokenizer's codebook size.
        align_loss (dict): ALIGN_LOSSES config (``REPALoss``); ``hidden_dim`` and ``teachers``
            are filled in from the AR and the teachers.
        align_depth (int): D, the number of AR blocks before the aligned hidden state
            (4 / 8 / 12 for B / L / XL).
        teacher_dims (dict): teacher name -> feature size (given by the owning model).
    """

    def __init__(self, ar: dict, align_loss: dict, align_depth: int, teacher_dims: Dict[str, int]):
        super().__init__()
        self.ar = AR_BACKBONES.build(ar)
        if not 0 < align_depth <= self.ar.n_layer:
            raise ValueError(f'align_depth must be in [1, {self.ar.n_layer}], got {align_depth}')
        self.align_loss = ALIGN_LOSSES.build(
            dict(align_loss, hidden_dim=self.ar.dim, teachers=teacher_dims))
        self.align_depth = align_depth

    def ntp_and_align(self, tokens: Tensor, cond: Tensor, targets: Dict[str, Tensor]
                      ) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """Hard branch: (losses {loss_ntp, loss_align}, metrics) for tokens (B, N) long."""
        out = self.ar(tokens[:, :-1], cond, return_hidden_at=self.align_depth)  # N positions
        loss_ntp = F.cross_entropy(out.logits.flatten(0, 1), tokens.flatten())  # (B*N, V)
        loss_align, metrics = self.align_loss(out.hidden, targets)
        return dict(loss_ntp=loss_ntp, loss_align=loss_align), metrics

    forward = ntp_and_align  # the prior phase's call; DDP syncs gradients only through forward

    def align(self, probs: Tensor, cond: Tensor, targets: Dict[str, Tensor]
              ) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Soft branch: alignment loss of the AR run on probabilities (B, N, K), early exit."""
        out = self.ar(probs[:, :-1], cond, return_hidden_at=self.align_depth, early_exit=True)
        return self.align_loss(out.hidden, targets)  # out.hidden: (B, N, dim)


def build_teachers(teachers: Dict[str, dict]) -> nn.ModuleDict:
    """Frozen alignment teachers by name (each an ALIGN_ENCODERS config).

    A config may add ``cache_dir``: the teacher's feature maps are then cached on disk there.
    """
    if not teachers:
        raise ValueError('teachers: give at least one, e.g. dict(effnet=dict(type=...))')
    built = nn.ModuleDict()
    for name, cfg in teachers.items():
        cfg = dict(cfg)
        cache_dir = cfg.pop('cache_dir', None)
        built[name] = ALIGN_ENCODERS.build(cfg)
        if cache_dir:
            if not hasattr(built[name], 'use_cache'):
                raise TypeError(f'teachers.{name}.cache_dir: {type(built[name]).__name__} is '
                                'not a BaseTeacher and has no feature cache')
            built[name].use_cache(cache_dir)
    return built


def build_prior(prior: dict, teachers: nn.ModuleDict, codebook_size: int) -> Prior:
    """The prior (AR + one projector per teacher) for a tokenizer of ``codebook_size`` codes."""
    built = Prior(**prior, teacher_dims={n: t.feature_dim for n, t in teachers.items()})
    if built.ar.vocab_size != codebook_size:
        raise ValueError(f'prior.ar.vocab_size {built.ar.vocab_size} != tokenizer '
                         f'codebook size {codebook_size}')
    return built


@torch.no_grad()
def teacher_features(teachers: nn.ModuleDict, x: Tensor) -> Dict[str, Tensor]:
    """Frozen teachers' patch features on the token grid: {name: (B, N, C)}, no gradient."""
    return {name: teacher(x) for name, teacher in teachers.items()}


def teacher_maps(teachers: nn.ModuleDict, x: Tensor) -> Dict[str, Tensor]:
    """Frozen teachers' feature maps before resampling: {name: (B, C, h, w)}, no gradient
    (``teacher.targets_from_map`` turns one into ``teacher(x)``)."""
    return {name: teacher.feature_map(x) for name, teacher in teachers.items()}
