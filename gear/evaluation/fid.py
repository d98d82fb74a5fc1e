"""Frechet Inception Distance: feature statistics, the distance, and reference statistics.

``frechet_distance`` follows pytorch-fid / the ADM evaluator exactly: ``scipy.linalg.sqrtm`` of
``sigma1 @ sigma2``; if that is not finite, retry with ``eps * I`` added to both covariances;
an imaginary part is dropped when the diagonal's is below 1e-3 and is an error otherwise.

Reference statistics are cached as ``.npz`` files named by a hash of everything that changes
them (dataset, split, number of images, resolution, resize filter, feature network file hash),
written atomically; a cache file that does not load, has the wrong shapes or non-finite values,
or was written for another key is recomputed with a warning, never used. Among the ranks of a
process group the cache is used only when every rank reads it; otherwise every rank takes part
in the (sharded) computation and rank 0 alone writes the file.
"""
import hashlib
import json
import os.path as osp
import warnings
import zipfile
from typing import Callable, NamedTuple, Optional, Tuple

import numpy as np
import scipy.linalg

from gear.utils.checkpoint import atomic_open

from .sharding import Shard, all_agree, barrier


class ReferenceStats(NamedTuple):
    """Statistics of a reference set: ``mu`` (D,), ``sigma`` (D, D), ``features`` (N, D) or None,
    and the sFID statistics of its spatial features, ``mu_s`` (S,) / ``sigma_s`` (S, S) or None."""
    mu: np.ndarray
    sigma: np.ndarray
    features: Optional[np.ndarray] = None
    mu_s: Optional[np.ndarray] = None
    sigma_s: Optional[np.ndarray] = None


def feature_statistics(features) -> Tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and unbiased covariance (D, D), in float64."""
    feats = np.asarray(features.cpu() if hasattr(features, 'cpu') else features, np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f'need (N >= 2, D) features, got shape {feats.shape}')
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), as pytorch-fid computes it."""
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f'shape mismatch: mu {mu1.shape} vs {mu2.shape}, '
                         f'sigma {sigma1.shape} vs {sigma2.shape}')
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))  # (D, D), maybe complex
    if not np.isfinite(covmean).all():
        warnings.warn(f'fid calculation produces singular product; adding {eps} to diagonal of '
                      'cov estimates')
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f'Imaginary component {np.max(np.abs(covmean.imag))}')
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance_from_features(feats1, feats2) -> float:
    """The Frechet distance of the two sets' Gaussians, exact and fast when a set has fewer
    samples than dimensions (quick FID on a few hundred samples; tests).

    With centred, scaled features A (n1, D) and B (n2, D), sigma1 = A^T A and sigma2 = B^T B, so
    the non-zero eigenvalues of sigma1 sigma2 are the squared singular values of A B^T and
    ``tr sqrtm(sigma1 sigma2)`` is the nuclear norm of the (n1, n2) matrix A B^T: no D x D
    ``sqrtm`` (about 30 s at D = 2048 on two CPU cores). Falls back to ``frechet_distance``
    when both sets have at least D samples.
    """
    f1, f2 = (np.asarray(f.cpu() if hasattr(f, 'cpu') else f, np.float64) for f in (feats1, feats2))
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(len(f1), len(f2)) < 2:
        raise ValueError(f'need two (N >= 2, D) feature sets, got {f1.shape} and {f2.shape}')
    if min(len(f1), len(f2)) >= f1.shape[1]:
        return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    mu1, mu2 = f1.mean(0), f2.mean(0)
    a = (f1 - mu1) / np.sqrt(len(f1) - 1)  # (n1, D)
    b = (f2 - mu2) / np.sqrt(len(f2) - 1)  # (n2, D)
    tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff.dot(diff) + (a * a).sum() + (b * b).sum() - 2 * tr_covmean)


def frechet_distance_to_stats(mu1, sigma1, feats2) -> float:
    """The Frechet distance of N(mu1, sigma1) (e.g. an ADM reference batch's statistics) and the
    Gaussian of (n2, D) features, exact and fast when n2 < D.

    With centred, scaled features B (n2, D), sigma2 = B^T B and the non-zero eigenvalues of
    sigma1 sigma2 are those of the symmetric PSD (n2, n2) matrix B sigma1 B^T, so
    ``tr sqrtm(sigma1 sigma2)`` is the sum of their square roots: no D x D ``sqrtm``. Falls back
    to ``frechet_distance`` when n2 >= D.
    """
    mu1 = np.asarray(mu1, np.float64)
    sigma1 = np.asarray(sigma1, np.float64)
    f2 = np.asarray(feats2.cpu() if hasattr(feats2, 'cpu') else feats2, np.float64)
    if f2.ndim != 2 or f2.shape[1] != mu1.shape[0] or sigma1.shape != (mu1.shape[0],) * 2 \
            or len(f2) < 2:
        raise ValueError(f'need mu (D,), sigma (D, D) and (N >= 2, D) features, got '
                         f'{mu1.shape}, {sigma1.shape} and {f2.shape}')
    if len(f2) >= f2.shape[1]:
        return frechet_distance(mu1, sigma1, *feature_statistics(f2))
    mu2 = f2.mean(0)
    b = (f2 - mu2) / np.sqrt(len(f2) - 1)  # (n2, D)
    eig = np.linalg.eigvalsh(b @ sigma1 @ b.T)  # (n2,) >= 0 up to rounding
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + (b * b).sum()
                 - 2 * np.sqrt(np.clip(eig, 0, None)).sum())


def reference_key(dataset: str, split: str, num_images: int, resolution: int,
                  inception) -> dict:
    """The cache key of a reference set whose features ``inception`` (an ``InceptionFeatures``)
    extracts."""
    key = dict(dataset=dataset, split=split, num_images=int(num_images),
               resolution=int(resolution), resize_filter=inception.resize_filter,
               quantize=inception.quantize, feature_network=inception.feature_network_sha256)
    if getattr(inception, 'has_spatial', False):  # sFID statistics stored too
        key['spatial'] = True
    return key


def cache_path(cache_dir: str, key: dict) -> str:
    """``{cache_dir}/fid_ref_{dataset}_{sha256(key)[:16]}.npz``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    name = ''.join(c if c.isalnum() or c in '-_' else '-' for c in str(key.get('dataset', 'ref')))
    return osp.join(cache_dir, f'fid_ref_{name}_{digest[:16]}.npz')


def _read_cache(path: str, key: dict) -> ReferenceStats:
    """Load and validate a cache file; raise ``ValueError`` on anything wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 -- truncated zip, bad header, bad CRC, ...
        raise ValueError(f'unreadable ({type(e).__name__}: {e})') from e
    for k in ('mu', 'sigma', 'key'):
        if k not in data:
            raise ValueError(f'missing array {k!r}')
    mu, sigma = data['mu'], data['sigma']
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f'wrong shapes: mu {mu.shape}, sigma {sigma.shape}')
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError('non-finite statistics')
    if str(data['key']) != json.dumps(key, sort_keys=True, default=str):
        raise ValueError(f'written for another key: {data["key"]}')
    feats = data.get('features')
    if feats is not None and (feats.ndim != 2 or feats.shape[1] != mu.shape[0]):
        raise ValueError(f'wrong feature shape {feats.shape}')
    mu_s, sigma_s = data.get('mu_s'), data.get('sigma_s')
    if key.get('spatial') and (mu_s is None or sigma_s is None
                               or sigma_s.shape != (mu_s.shape[0],) * 2):
        raise ValueError('no (or malformed) spatial statistics mu_s / sigma_s')
    return ReferenceStats(mu.astype(np.float64), sigma.astype(np.float64), feats,
                          *(None if a is None else a.astype(np.float64) for a in (mu_s, sigma_s)))


def load_or_compute_reference(cache_dir: str, key: dict, compute_fn: Callable,
                              with_features: bool = False, shard: Shard = Shard()):
    """Reference statistics from the cache, or from ``compute_fn()`` (then cached).

    Args:
        cache_dir: directory of the cache files.
        key: JSON-serialisable dict of everything the statistics depend on (see
            ``reference_key``); its hash names the file.
        compute_fn: no-argument callable returning (N, D) features, a ``(mu, sigma)`` pair, or
            ``dict(features=(N, D), spatial=(N, S))`` (then ``mu_s`` / ``sigma_s`` are stored).
        with_features: also cache and return the features (for precision / recall); a cached
            file without them is recomputed.
        shard: this rank's ``Shard`` when every rank calls this and ``compute_fn`` is a
            collective (the sharded feature pass): the ranks agree on a cache hit, rank 0
            writes the file, and every rank returns once it is written.

    Returns:
        ``(mu, sigma)``, or ``ReferenceStats(mu, sigma, features)`` when ``with_features``.
    """
    path = cache_path(cache_dir, key)
    stats = None
    if osp.exists(path):
        try:
            stats = _read_cache(path, key)
            if with_features and stats.features is None:
                raise ValueError('no features stored (precision / recall need them)')
        except ValueError as e:
            stats = None
            warnings.warn(f'FID reference cache {path} is invalid ({e}); recomputing it')
    if all_agree(stats is not None, shard):  # every rank read it (before rank 0 writes)
        return stats if with_features else (stats.mu, stats.sigma)
    out, spatial = compute_fn(), {}
    if isinstance(out, dict):
        if out.get('spatial') is not None:
            spatial = dict(zip(('mu_s', 'sigma_s'), feature_statistics(out['spatial'])))
        out = out['features']
    if isinstance(out, (tuple, list)) and len(out) == 2:
        mu, sigma = (np.asarray(a, np.float64) for a in out)
        feats = None
    else:
        feats = np.asarray(out.cpu() if hasattr(out, 'cpu') else out, np.float32)
        mu, sigma = feature_statistics(feats)
    if with_features and feats is None:
        raise ValueError('with_features=True needs compute_fn to return features, not (mu, sigma)')
    arrays = dict(mu=mu, sigma=sigma, key=np.array(json.dumps(key, sort_keys=True, default=str)),
                  **spatial)
    if with_features:
        arrays['features'] = feats
    if shard.is_main:
        with atomic_open(path) as f:
            np.savez(f, **arrays)
    barrier(shard)
    stats = ReferenceStats(mu, sigma, feats, spatial.get('mu_s'), spatial.get('sigma_s'))
    return stats if with_features else (mu, sigma)


def load_reference_npz(path: str, load_images: bool = False) -> dict:
    """Read an ADM (guided-diffusion evaluator) reference batch, e.g.
    ``VIRTUAL_imagenet256_labeled.npz``: ``arr_0`` (N, H, W, 3) uint8 images and the pool3
    statistics ``mu`` (2048,), ``sigma`` (2048, 2048) (and spatial ``mu_s`` / ``sigma_s``).

    Returns a dict with ``mu``, ``sigma`` (float64), ``mu_s`` / ``sigma_s`` when present,
    ``num_images`` (None without ``arr_0``) and ``images`` ((N, H, W, 3) uint8 when
    ``load_images``, else None; the ImageNet batch is 2 GB). Precision / recall need the
    features of the images, which the ADM file does not store.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'reference batch {path} not found')
    with np.load(path) as z:  # lazy: an array is read only when indexed
        names = set(z.files)
        if not {'mu', 'sigma'} <= names:
            raise ValueError(f'{path} has no mu / sigma statistics (arrays: {sorted(names)})')
        out = {k: np.asarray(z[k], np.float64) for k in ('mu', 'sigma', 'mu_s', 'sigma_s')
               if k in names}
        mu, sigma = out['mu'], out['sigma']
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(f'{path}: wrong shapes mu {mu.shape}, sigma {sigma.shape}')
        out['num_images'] = None
        out['images'] = None
        if 'arr_0' in names:
            if load_images:
                out['images'] = np.asarray(z['arr_0'])
                out['num_images'] = len(out['images'])
            else:
                out['num_images'] = _npz_array_len(path, 'arr_0')
    return out


def _npz_array_len(path: str, name: str) -> int:
    """First dimension of an array inside an ``.npz`` without reading its data."""
    with zipfile.ZipFile(path) as zf, zf.open(f'{name}.npy') as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if major == 1
                       else np.lib.format.read_array_header_2_0)
        shape = read_header(f)[0]
    return int(shape[0])
