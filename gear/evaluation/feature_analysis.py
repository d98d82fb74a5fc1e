"""How teacher-like are the tokenizer's and the AR's features? (REFERENCE.md: GEAR makes the
tokenizer's own features less teacher-like while the AR's per-patch features track the teacher
much more closely.)

On a batch of real images, per teacher, with the teacher's patch features ``y`` (B*N, C):
- ``cka_tokenizer``: linear CKA of ``y`` and the tokenizer's pre-quantisation features on the same
  token grid, (B, C_z, h, w) -> (B*h*w, C_z) row-major, the teacher's patch order;
- ``cka_ar``: linear CKA of ``y`` and the AR hidden state after ``align_depth`` blocks at the
  position that predicts each patch, teacher-forced on the image's own tokens (B*N, dim);
- ``projector_cosine``: mean patch cosine of the trained projector's output and ``y`` (what the
  REPA loss maximises; the ``cos/{teacher}`` of validation).
CKA is invariant to orthogonal transforms and isotropic scaling, so it compares representations
without a trained map; the projector cosine measures the trained map itself.
"""
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from gear.models.align.repa import patch_cosine


def _as_float64(x) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    return x.astype(np.float64).reshape(len(x), -1)


def linear_cka(x, y) -> float:
    """Linear centred kernel alignment (Kornblith et al., 2019), in float64.

    ``CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` with column-centred X, Y: the
    feature-space form of HSIC(XX^T, YY^T) normalised, O(n d^2) instead of O(n^2).

    Args:
        x: (n, d1) features (array or tensor).
        y: (n, d2) features of the same n examples.

    Returns:
        CKA in [0, 1]; NaN when either set is constant (no variance).
    """
    x, y = _as_float64(x), _as_float64(y)
    if len(x) != len(y):
        raise ValueError(f'linear_cka needs the same examples: {x.shape[0]} vs {y.shape[0]} rows')
    x = x - x.mean(0)  # (n, d1)
    y = y - y.mean(0)  # (n, d2)
    cross = np.linalg.norm(y.T @ x) ** 2  # ||Y^T X||_F^2
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norm) if norm > 0 else float('nan')


def mean_patch_cosine(a: Tensor, b: Tensor) -> float:
    """Mean over batch and patches of the cosine between (B, N, C) ``a`` and ``b``."""
    if a.shape != b.shape:
        raise ValueError(f'mean_patch_cosine: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}')
    return float(patch_cosine(a, b).mean())  # (B, N) -> scalar


def grid_to_rows(feat: Tensor) -> Tensor:
    """(B, C, h, w) -> (B*h*w, C), row-major positions per image (the teachers' N order)."""
    return feat.permute(0, 2, 3, 1).reshape(-1, feat.shape[1])  # (B, h, w, C) -> (B*h*w, C)


def evaluation_parts(model: nn.Module, use_ema: bool = True) -> Tuple[nn.Module, Optional[nn.Module]]:
    """``(tokenizer, prior or None)`` of a tokenizer-only model, GEAR or FrozenTokenizerAR.

    ``use_ema`` picks the EMA copies where the model keeps them (a frozen tokenizer has none).
    """
    tokenizer = model.tokenizer
    if use_ema and hasattr(model, 'tokenizer_ema'):
        tokenizer = model.tokenizer_ema.module
    prior = getattr(model, 'prior', None)
    if prior is not None and use_ema and hasattr(model, 'prior_ema'):
        prior = model.prior_ema.module
    return tokenizer, prior


@torch.no_grad()
def feature_alignment(model: nn.Module, images: Tensor, labels: Tensor,
                      use_ema: bool = True) -> Dict[str, object]:
    """Tokenizer and AR features vs every teacher of ``model`` on real images.

    Args:
        model: a ``GEAR`` or ``FrozenTokenizerAR`` (needs ``teachers`` and a prior).
        images: (B, 3, H, W) real images in [-1, 1].
        labels: (B,) their class labels (the AR's condition).
        use_ema: analyse the EMA tokenizer and prior (what is sampled from and released).

    Returns:
        ``dict(num_images, num_patches, align_depth, use_ema, teachers={name: dict(
        cka_tokenizer, cka_ar, projector_cosine)})``.
    """
    teachers = getattr(model, 'teachers', None)
    tokenizer, prior = evaluation_parts(model, use_ema)
    if not teachers or prior is None:
        raise ValueError(f'{type(model).__name__} has no teachers / prior to analyse')
    was_training = model.training
    model.eval()
    try:
        targets = model.teacher_features(images)  # {name: (B, N, C)}
        z = tokenizer.encode_features(images)  # (B, C_z, h, w)
        tokens = tokenizer.encode(images).indices.flatten(1)  # (B, h, w) -> (B, N)
        out = prior.ar(tokens[:, :-1], labels, return_hidden_at=prior.align_depth)
        hidden = out.hidden  # (B, N, dim): position k predicts token k
    finally:
        model.train(was_training)
    b, n = tokens.shape
    z_rows = grid_to_rows(z)  # (B*N, C_z)
    h_rows = hidden.reshape(b * n, -1)  # (B*N, dim)
    report = {}
    for name, y in targets.items():
        if y.shape[:2] != (b, n):
            raise ValueError(f'teacher {name!r} gives {tuple(y.shape[:2])} patches, the token grid '
                             f'is {(b, n)}: set its grid_size to the token grid side')
        y_rows = y.reshape(b * n, -1)  # (B*N, C)
        projector = prior.align_loss.projectors[name]
        report[name] = dict(cka_tokenizer=linear_cka(z_rows, y_rows),
                            cka_ar=linear_cka(h_rows, y_rows),
                            projector_cosine=mean_patch_cosine(projector(hidden), y))
    return dict(num_images=b, num_patches=n, align_depth=prior.align_depth, use_ema=use_ema,
                teachers=report)
