"""Improved precision and recall (Kynkaanniemi et al., 2019), as the ADM evaluator computes them.

Each feature set defines a manifold: the union of balls around its points, the radius of a
point's ball being the distance to its k-th nearest neighbour in the same set (k = 3; the point
itself, at distance 0, is not counted). Precision is the fraction of generated features inside
the real manifold; recall is the fraction of real features inside the generated manifold.
Points on a ball's surface count as inside (``<=``). Squared Euclidean distances are computed
in row batches with one matmul each (``|a|^2 - 2 a.b + |b|^2``, clamped at 0), as in ADM's
``ManifoldEstimator``; memory is ``row_batch_size x N`` distances.
"""
from typing import Dict, Optional

import torch


def _as_tensor(x, device, dtype) -> torch.Tensor:
    x = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    x = x.to(device=device, dtype=dtype)
    if x.ndim == 1:  # (N,) -> (N, 1): 1-D features
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f'expected (N, D) features, got shape {tuple(x.shape)}')
    return x


def pairwise_sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(M, D), (N, D) -> (M, N) squared Euclidean distances, clamped at 0."""
    d = (a * a).sum(1, keepdim=True) - 2 * a @ b.T + (b * b).sum(1)[None]
    return d.clamp_min_(0)


def manifold_radii(feats: torch.Tensor, k: int = 3, row_batch_size: int = 10000) -> torch.Tensor:
    """(N, D) -> (N,) squared distance of each point to its k-th nearest other point."""
    if len(feats) <= k:
        raise ValueError(f'need more than k={k} points for a k-NN manifold, got {len(feats)}')
    radii = []
    for rows in feats.split(row_batch_size):
        d = pairwise_sq_distances(rows, feats)  # (R, N); the point itself sits at ~0
        radii.append(d.kthvalue(k + 1, dim=1).values)  # (R,)
    return torch.cat(radii)


def coverage(points: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor,
             row_batch_size: int = 10000) -> torch.Tensor:
    """(M, D) points, (N, D) manifold points with (N,) squared radii -> (M,) bool: inside."""
    inside = []
    for rows in points.split(row_batch_size):
        d = pairwise_sq_distances(rows, manifold)  # (R, N)
        inside.append((d <= radii[None]).any(dim=1))  # (R,)
    return torch.cat(inside)


@torch.no_grad()
def precision_recall(real_feats, fake_feats, k: int = 3, row_batch_size: int = 10000,
                     device: Optional[torch.device] = None,
                     dtype: torch.dtype = torch.float64) -> Dict[str, float]:
    """Improved precision / recall of generated features against real ones.

    Args:
        real_feats: (N, D) real (reference) features, array or tensor; (N,) for 1-D features.
        fake_feats: (M, D) generated features.
        k: neighbourhood size of the manifolds (ADM: 3).
        row_batch_size: rows per distance matmul.
        device: where to compute (default: the real features' device).
        dtype: computation dtype; float64 by default so that points on a ball's surface and
            duplicated points are not decided by rounding (use float32 on a GPU for 50k).

    Returns:
        ``dict(precision=..., recall=...)``, floats in [0, 1].
    """
    if device is None:
        device = real_feats.device if isinstance(real_feats, torch.Tensor) else 'cpu'
    real = _as_tensor(real_feats, device, dtype)
    fake = _as_tensor(fake_feats, device, dtype)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f'feature dims differ: real {real.shape[1]}, fake {fake.shape[1]}')
    real_radii = manifold_radii(real, k, row_batch_size)  # (N,)
    fake_radii = manifold_radii(fake, k, row_batch_size)  # (M,)
    precision = coverage(fake, real, real_radii, row_batch_size).double().mean()
    recall = coverage(real, fake, fake_radii, row_batch_size).double().mean()
    return dict(precision=float(precision), recall=float(recall))
