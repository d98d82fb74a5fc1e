"""The evaluation protocol's pieces (REFERENCE.md): Inception network, cached real statistics,
generator metrics (FID, precision / recall, Inception Score) of sampled images, tokenizer metrics
(L1, PSNR and SSIM on LlamaGen's protocol and gear's own, codebook usage, rFID).
``gear.apis.evaluate`` runs them on a checkpoint; the ``GenerativeEvalHook`` during training.

A metric that cannot be computed (no Inception file, a logit-less network) is listed under
``unavailable`` with the reason; the rest still runs.

Under ``torchrun`` every piece shards its batches over the ranks (``sharding.py``: rank r takes
batches r, r + W, ..) and gathers the results in order, so every rank gets one process's numbers;
only rank 0 writes files (reference caches, sample ``.npz``, grids) and shows progress bars.
``distributed=False`` runs a piece on this rank alone (``GenerativeEvalHook``: rank 0 only).
"""
import os.path as osp
import time
from typing import Callable, Iterator, Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate

from gear.utils.checkpoint import file_sha256
from gear.utils.progress import progress_bar

from .feature_analysis import evaluation_parts
from .fid import (ReferenceStats, cache_path, feature_statistics, frechet_distance_from_features,
                  load_or_compute_reference, load_reference_npz, reference_key)
from .generative import compute_generative_metrics
from .inception import InceptionFeatures
from .llamagen_metrics import RECON_PROTOCOL
from .reconstruction import ReconstructionMetric
from .sampling import SamplingSettings, is_prompts, sample_images, save_grid, save_npz
from .sharding import Shard, map_in_order

PARTS = ('tokenizer', 'generator', 'features')


def build_inception(weights: Optional[str] = None, resize_filter: str = 'bilinear',
                    batch_size: int = 50) -> Tuple[Optional[InceptionFeatures], Optional[str]]:
    """``(network, None)``, or ``(None, reason)`` when the FID network cannot be loaded."""
    try:
        return InceptionFeatures(weights, resize_filter=resize_filter, batch_size=batch_size), None
    except (FileNotFoundError, RuntimeError) as e:
        return None, f'no FID Inception network: {e}'


def iterate_batches(data: Union[Dataset, DataLoader], batch_size: int = 64,
                    max_images: Optional[int] = None) -> Iterator[Tuple[Tensor, Tensor]]:
    """(images (B, 3, H, W) in [-1, 1], labels (B,)) of the first ``max_images`` items."""
    if isinstance(data, Dataset):
        data = Subset(data, range(min(int(max_images or len(data)), len(data))))
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    n = 0
    for batch in data:
        x = batch['img'].float()  # a caption dataset has no labels: y is None
        y = torch.as_tensor(batch['label']) if 'label' in batch else None
        if max_images is not None:
            x, y = x[:max_images - n], None if y is None else y[:max_images - n]
        n += len(x)
        yield x, y
        if max_images is not None and n >= max_images:
            return


def map_batches(fn: Callable[[Tensor, Tensor], object], data: Union[Dataset, DataLoader],
                batch_size: int = 64, max_images: Optional[int] = None,
                shard: Shard = Shard()) -> Iterator:
    """``fn(images, labels)`` of every ``iterate_batches`` batch, in order, on every rank; rank
    r computes (and, from a dataset, loads) batches r, r + W, .. only. From a dataloader every
    rank reads every batch."""
    if not isinstance(data, Dataset):
        return map_in_order(lambda b: fn(*b), iterate_batches(data, batch_size, max_images), shard)
    n = min(int(max_images or len(data)), len(data))

    def load(indices: range) -> Tuple[Tensor, Tensor]:  # as DataLoader(Subset(data, ..)) does
        batch = default_collate([data[i] for i in indices])
        labels = torch.as_tensor(batch['label']) if 'label' in batch else None  # (B,)
        return batch['img'].float(), labels  # (B, 3, H, W), (B,) or None (captions)

    items = [range(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    return map_in_order(lambda indices: fn(*load(indices)), items, shard)


def dataset_reference(dataset: Dataset, num_images: int, inception: InceptionFeatures,
                      cache_dir: str, name: Optional[str] = None, split: Optional[str] = None,
                      batch_size: int = 100, progress: bool = True,
                      distributed: Optional[bool] = None) -> dict:
    """Inception statistics and features of the first ``num_images`` of ``dataset``, cached:
    ``dict(stats=ReferenceStats, info=dict(file, sha256, key, cached, time_s))``; ``key`` names
    the dataset, split, count, resolution, resize filter and network file hash. On a cache
    miss the features are computed sharded over the ranks (see the module docstring)."""
    n = min(int(num_images), len(dataset))
    name = name or getattr(dataset, 'metainfo', {}).get('dataset_name') or type(dataset).__name__
    key = reference_key(name, split or getattr(dataset, 'split', 'unknown'), n,
                        dataset[0]['img'].shape[-1], inception)
    computed, start, shard = [], time.perf_counter(), Shard.current(distributed)

    def compute() -> dict:
        computed.append(True)
        parts = []
        with progress_bar(n, 'reference', progress) as bar:
            for out in map_batches(lambda x, _: inception.extract(x), dataset, batch_size, n,
                                   shard):
                parts.append(out)  # features (B, D), spatial (B, S) when the network has them
                bar.update(len(out['features']))
        return {k: torch.cat([p[k] for p in parts]) for k in ('features', 'spatial')
                if k in parts[0]}  # (n, D), (n, S)

    stats = load_or_compute_reference(cache_dir, key, compute, with_features=True, shard=shard)
    path = cache_path(cache_dir, key)
    return dict(stats=stats, info=dict(file=osp.abspath(path), sha256=file_sha256(path)[:16],
                                       key=key, cached=not computed,
                                       time_s=time.perf_counter() - start))


def npz_reference(path: str, inception: InceptionFeatures, cache_dir: str,
                  batch_size: int = 100, progress: bool = True,
                  distributed: Optional[bool] = None) -> dict:
    """An ADM reference batch (``VIRTUAL_imagenet256_labeled.npz``) as a ``dataset_reference``:
    the FID statistics are the file's ``mu`` / ``sigma``, as the ADM evaluator uses them; the
    features (precision / recall) are this network's of the file's images ``arr_0``, cached by
    the file's hash (None when the file holds statistics only), computed sharded."""
    start, computed, shard = time.perf_counter(), [], Shard.current(distributed)
    batch = load_reference_npz(path)  # mu, sigma, num_images (images not read yet)
    sha = file_sha256(path)[:16]
    feats = None
    if batch['num_images']:
        key = reference_key(f'adm-npz-{sha}', 'arr_0', batch['num_images'], 0, inception)
        key.pop('spatial', None)  # the sFID statistics are the file's

        def compute() -> Tensor:
            computed.append(True)
            images = load_reference_npz(path, load_images=True)['images']  # (N, H, W, 3) uint8
            feats = []
            with progress_bar(len(images), 'reference', progress) as bar:
                for f in map_in_order(lambda i: inception(
                        torch.from_numpy(images[i:i + batch_size]).permute(0, 3, 1, 2).float()
                        / 127.5 - 1), range(0, len(images), batch_size), shard):  # (B, D)
                    feats.append(f)
                    bar.update(len(f))
            return torch.cat(feats)  # (N, D)
        feats = load_or_compute_reference(cache_dir, key, compute, with_features=True,
                                          shard=shard).features
    stats = ReferenceStats(batch['mu'], batch['sigma'], feats, batch.get('mu_s'),
                           batch.get('sigma_s'))
    return dict(stats=stats, info=dict(file=osp.abspath(path), sha256=sha, kind='adm_npz',
                          num_images=batch['num_images'], statistics='the file\'s mu / sigma',
                          features_cached=not computed if feats is not None else None,
                          time_s=time.perf_counter() - start))


def first_images(reference: dict, n: int) -> dict:
    """A ``dataset_reference`` restricted to its first ``n`` images (same network and filter)."""
    feats = reference['stats'].features[:n]  # (n, D)
    return dict(stats=ReferenceStats(*feature_statistics(feats), feats),
                info=dict(reference['info'], first_images=n))


def evaluate_generator(model: nn.Module, settings: SamplingSettings, reference: Optional[dict],
                       inception: Optional[InceptionFeatures], labels,
                       device: str = 'cpu', fid_method: str = 'auto',
                       inception_error: str = 'no FID network given',
                       grid_path: Optional[str] = None, samples_npz: Optional[str] = None,
                       progress: bool = True, distributed: Optional[bool] = None,
                       clip_scorer=None) -> dict:
    """Sample one image per label and compute FID, precision / recall (and IS when possible).

    ``model`` (GEAR or FrozenTokenizerAR on ``device``) samples ``labels`` (N,) (or N prompts
    for a text-to-image model) against
    ``reference`` (a ``dataset_reference`` or ``npz_reference``); no ``inception``: every metric
    unavailable with ``inception_error``. ``fid_method``: 'sqrtm', 'features',
    'stats_features' or 'auto': below 2048 (D) samples 'features' (both sets' features), or
    'stats_features' (the reference's mu / sigma) for an ADM file; 'sqrtm' otherwise. All are
    exact; the fast ones avoid a D x D ``sqrtm``.
    ``grid_path``: a PNG of samples (one class per row when the labels are class-balanced).
    ``samples_npz``: also write the samples in the ADM layout, for the official evaluator.
    Sampling and the Inception pass are sharded over the ranks (``distributed``: see
    ``sample_images``); rank 0 writes the files. ``clip_scorer`` (a ``CLIPScorer``, prompts
    only): also ``clip_score`` of the samples against their prompts.
    """
    ar = evaluation_parts(model, settings.use_ema)[1].ar
    out = dict(settings=settings.to_dict(), num_samples=len(labels))
    if inception is None or reference is None:
        names = ('fid', 'precision', 'recall', 'inception_score')
        return dict(out, unavailable=dict.fromkeys(names, inception_error))
    start, shard = time.perf_counter(), Shard.current(distributed)
    images = sample_images(model, labels, settings, device, progress,
                           shard.world_size > 1)  # (N, H, W, 3) uint8
    out['sampling_time_s'] = time.perf_counter() - start
    if clip_scorer is not None and is_prompts(labels):
        out['clip_score'] = clip_scorer.score(images, labels)
    if samples_npz is not None:
        if shard.is_main:
            save_npz(images, None if is_prompts(labels) else labels, samples_npz)
        out['samples_npz'] = osp.abspath(samples_npz)
    if grid_path is not None and is_prompts(labels):  # prompts: in order, 10 per row
        if shard.is_main:
            save_grid(images, grid_path, nrow=10)
        out['grid'] = osp.abspath(grid_path)
    elif grid_path is not None:
        counts = torch.bincount(labels, minlength=ar.num_classes)  # (C,)
        balanced = bool((counts == counts[0]).all()) and torch.equal(
            labels, torch.arange(ar.num_classes).repeat_interleave(int(counts[0])))
        per_class = int(counts[0]) if balanced else None
        shown = (images.view(ar.num_classes, -1, *images.shape[1:])[:, :10].flatten(0, 1)
                 if per_class else images)  # (C * min(P, 10), H, W, 3)
        if shard.is_main:
            save_grid(shown, grid_path, nrow=min(per_class, 10) if per_class else 10)
        out['grid'] = osp.abspath(grid_path)
    if fid_method == 'auto':  # exact and fast below D samples: no D x D sqrtm
        feats, few = reference['stats'].features, len(labels) < inception.feature_dim
        if reference['info'].get('kind') == 'adm_npz':  # the file's statistics
            fid_method = 'stats_features' if few else 'sqrtm'
        else:
            small = feats is not None and min(len(labels), len(feats)) < inception.feature_dim
            fid_method = 'features' if small else 'sqrtm'
    start = time.perf_counter()
    out.update(compute_generative_metrics(images.split(100), reference['stats'], inception,
                                          fid_method=fid_method, progress=progress,
                                          shard=shard))
    out.update(metrics_time_s=time.perf_counter() - start, reference=reference['info'])
    return out


@torch.no_grad()
def evaluate_tokenizer(model: nn.Module, data: Union[Dataset, DataLoader],
                       inception: Optional[InceptionFeatures] = None,
                       reference: Optional[dict] = None, use_ema: bool = True,
                       max_images: Optional[int] = None, batch_size: int = 64,
                       device: str = 'cpu', inception_error: str = 'no FID network given',
                       progress: bool = True, distributed: Optional[bool] = None) -> dict:
    """Reconstruction L1 / PSNR / SSIM, codebook usage / perplexity / entropy and rFID of the
    (EMA) tokenizer on the first ``max_images`` of ``data`` (a dataset or dataloader).
    ``psnr`` / ``ssim`` are LlamaGen's, ``psnr_float`` / ``ssim_gaussian11`` gear's own; the
    results' ``recon_protocol`` says how each was computed.
    ``reference``: a ``dataset_reference`` of the SAME images (cached real features), or None
    to compute them here; without ``inception`` rFID is unavailable (``inception_error``).
    The batches are sharded over the ranks (``distributed``: see ``sample_images``).
    """
    tokenizer = evaluation_parts(model, use_ema)[0]
    was_training, _ = tokenizer.training, tokenizer.eval()
    metric = ReconstructionMetric(codebook_size=tokenizer.codebook_size)
    real, fake = [], []

    def reconstruct(x: Tensor, _) -> tuple:  # one batch: (per-image results, fake, real)
        x_hat, q = tokenizer(x.to(device))  # (B, 3, H, W), indices (B, h, w)
        part = ReconstructionMetric(codebook_size=tokenizer.codebook_size)
        part.process(None, [dict(gt_img=g, pred_img=p, indices=i) for g, p, i in
                            zip(x, x_hat.cpu(), q.indices.cpu())])
        if inception is None:
            return part.results, None, None
        return (part.results, inception(x_hat.clamp(-1, 1)),  # (B, 2048)
                inception(x) if reference is None else None)

    total = min(int(max_images or len(data)), len(data)) if isinstance(data, Dataset) else None
    try:
        with progress_bar(total, 'tokenizer', progress) as bar:
            for results, f, r in map_batches(reconstruct, data, batch_size, max_images,
                                             Shard.current(distributed)):
                metric.results.extend(results)
                fake += [f] if f is not None else []
                real += [r] if r is not None else []
                bar.update(len(results))
    finally:
        tokenizer.train(was_training)
    out = dict(metric.compute_metrics(metric.results), num_images=len(metric.results),
               use_ema=use_ema, recon_protocol=RECON_PROTOCOL)
    if inception is None:
        return dict(out, unavailable=dict(rfid=inception_error))
    real = reference['stats'].features if reference is not None else torch.cat(real)
    out.update(rfid=frechet_distance_from_features(real, torch.cat(fake)), rfid_method='features'
               if min(len(real), len(metric.results)) < inception.feature_dim else 'sqrtm',
               **inception.settings())
    out['reference'] = reference['info'] if reference is not None else None
    return out
