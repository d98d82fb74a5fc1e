"""Generation metrics of a set of samples against reference statistics: FID, improved precision
and recall, Inception Score, with the settings that must be reported beside them.

``compute_generative_metrics`` is a plain helper (the sampling loop feeds it batches); a metric
that cannot be computed is listed under ``unavailable`` with the reason instead of a number.
Its Inception pass can be sharded over the ranks of a process group (``sharding.py``).
"""
from typing import Dict, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch

from gear.utils.progress import progress_bar

from .fid import (ReferenceStats, feature_statistics, frechet_distance,
                  frechet_distance_from_features, frechet_distance_to_stats)
from .precision_recall import precision_recall
from .sharding import Shard, map_in_order


def inception_score(logits, split_size: int = 5000) -> float:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` of (N, C) logits, averaged over splits of
    ``split_size`` samples, as the ADM evaluator computes it (``compute_inception_score``).

    Uniform predictions give 1; confident predictions spread evenly over C classes give C.
    """
    logits = torch.as_tensor(logits, dtype=torch.float64)
    if logits.ndim != 2:
        raise ValueError(f'expected (N, C) logits, got shape {tuple(logits.shape)}')
    scores = []
    for part in logits.split(split_size):
        log_p = torch.log_softmax(part, dim=1)  # (n, C) log p(y|x)
        log_py = torch.logsumexp(log_p, dim=0) - np.log(len(part))  # (C,) log p(y)
        kl = (log_p.exp() * (log_p - log_py[None])).sum(1)  # (n,)
        scores.append(float(kl.mean().exp()))
    return float(np.mean(scores))


def _to_model_range(batch) -> torch.Tensor:
    """A batch of images -> (B, 3, H, W) float in [-1, 1]. uint8 input (NHWC as in ADM sample
    ``.npz`` files, or NCHW) is read as 0..255 pixels."""
    x = torch.as_tensor(np.asarray(batch)) if not isinstance(batch, torch.Tensor) else batch
    if x.dtype == torch.uint8:
        if x.ndim == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
            x = x.permute(0, 3, 1, 2)  # (B, H, W, 3) -> (B, 3, H, W)
        x = x.float() / 127.5 - 1
    return x


def _as_stats(reference) -> ReferenceStats:
    """(mu, sigma), (mu, sigma, features), ``ReferenceStats`` or a dict (``load_reference_npz``)
    -> ``ReferenceStats``."""
    if isinstance(reference, ReferenceStats):
        return reference
    if isinstance(reference, dict):
        return ReferenceStats(reference['mu'], reference['sigma'], reference.get('features'),
                              reference.get('mu_s'), reference.get('sigma_s'))
    return ReferenceStats(*reference)


def _distance(mu, sigma, ref_feats, feats, method: str) -> float:
    if method == 'features':
        return frechet_distance_from_features(ref_feats, feats)
    if method == 'stats_features':
        return frechet_distance_to_stats(mu, sigma, feats)
    return frechet_distance(mu, sigma, *feature_statistics(feats))


def _capped(batches: Iterable, max_samples: Optional[int]) -> Iterator[torch.Tensor]:
    """The batches in [-1, 1], cut after ``max_samples`` images (empty batches end it)."""
    n = 0
    for batch in batches:
        x = _to_model_range(batch)
        if max_samples is not None:
            x = x[:max_samples - n]
        if len(x) == 0:
            return
        yield x
        n += len(x)
        if max_samples is not None and n >= max_samples:
            return


def compute_generative_metrics(fake_images_iter: Iterable, reference, inception,
                               k: int = 3, is_split_size: int = 5000,
                               max_samples: Optional[int] = None, fid_method: str = 'sqrtm',
                               progress: bool = False, shard: Shard = Shard()) -> Dict:
    """FID (and precision / recall / IS where possible) of generated images.

    Args:
        fake_images_iter: iterable of image batches, (B, 3, H, W) float in [-1, 1] or uint8.
        reference: ``(mu (D,), sigma (D, D), real_features (N, D) or None)`` (a 2-tuple, a
            ``ReferenceStats`` or a dict from ``load_reference_npz`` also work).
        inception: an ``InceptionFeatures``; must be the network (and resize filter) the
            reference statistics were computed with.
        k: neighbourhood size of precision / recall.
        is_split_size: samples per Inception Score split (ADM: 5000).
        max_samples: stop after this many samples.
        fid_method: ``'sqrtm'``: ``frechet_distance`` on (mu, sigma), the pytorch-fid / ADM
            computation (use it for reported numbers); ``'features'``:
            ``frechet_distance_from_features`` against the real features (same value to
            rounding, much faster for a few hundred samples; needs real features);
            ``'stats_features'``: the reference (mu, sigma) against the sample features
            (``frechet_distance_to_stats``: exact, fast below D samples; for a reference that
            holds statistics, such as an ADM batch).
        progress: a tqdm bar of the Inception pass (rank 0; its total is known when
            ``fake_images_iter`` is a list or tuple of batches).
        shard: this rank's ``Shard``: rank r computes the features of batches r, r + W, ..
            and every rank gathers all of them in order (every rank must pass the same
            batches); the default computes all here.

    Returns:
        dict with ``fid``; ``precision`` and ``recall`` when real features are given;
        ``inception_score`` when the network has logits; ``sfid`` when it has spatial features
        and the reference their statistics; ``unavailable`` (name -> reason) for
        those that could not be computed; and the settings ``num_samples``,
        ``resize_filter``, ``quantize``, ``feature_network`` (sha256[:16] of the network file),
        ``fid_method``.
    """
    ref = _as_stats(reference)
    ref_mu, ref_sigma, ref_feats = ref.mu, ref.sigma, ref.features
    if fid_method not in ('sqrtm', 'features', 'stats_features'):
        raise ValueError(f"fid_method must be 'sqrtm', 'features' or 'stats_features', got "
                         f"{fid_method!r}")
    if fid_method == 'features' and ref_feats is None:
        raise ValueError("fid_method='features' needs the real features in `reference`")
    def features(x: torch.Tensor) -> dict:  # features (B, 2048); logits, spatial if any
        return inception.extract(x)

    total = (sum(len(b) for b in fake_images_iter) if isinstance(fake_images_iter, Sequence)
             else max_samples)
    if total is not None and max_samples is not None:
        total = min(total, max_samples)
    parts, n = [], 0
    with progress_bar(total, 'features', progress) as bar:
        for out in map_in_order(features, _capped(fake_images_iter, max_samples), shard):
            parts.append(out)
            n += len(out['features'])
            bar.update(len(out['features']))
    if n < 2:
        raise ValueError(f'need at least 2 generated samples, got {n}')
    feats = torch.cat([p['features'] for p in parts])  # (N, 2048) float64
    out = dict(fid=_distance(ref_mu, ref_sigma, ref_feats, feats, fid_method))
    unavailable = {}
    if not inception.has_spatial:
        unavailable['sfid'] = (f'feature network {inception.weights_path} gives no spatial '
                               'features (mixed_6/conv): no sFID')
    elif ref.mu_s is None:
        unavailable['sfid'] = 'the reference holds no spatial statistics (mu_s / sigma_s)'
    else:  # the ADM evaluator's sFID: FID of the spatial features, from statistics
        spatial = torch.cat([p['spatial'] for p in parts])  # (N, S)
        few = len(spatial) < spatial.shape[1]
        out['sfid'] = _distance(ref.mu_s, ref.sigma_s, None, spatial,
                                'stats_features' if few else 'sqrtm')
    if ref_feats is not None:
        out.update(precision_recall(ref_feats, feats, k=k))
    else:
        reason = 'no real features given (the reference holds statistics only)'
        unavailable.update(precision=reason, recall=reason)
    if inception.has_logits:
        logits = torch.cat([p['logits'] for p in parts])  # (N, C)
        out['inception_score'] = inception_score(logits, is_split_size)
    else:
        unavailable['inception_score'] = (
            f'feature network {inception.weights_path} has no logits layer (pool3 features only)')
    if unavailable:
        out['unavailable'] = unavailable
    out.update(num_samples=n, fid_method=fid_method, **inception.settings())
    return out
