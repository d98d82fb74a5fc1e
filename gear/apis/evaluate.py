"""Evaluate a trained model: generator metrics (FID, precision / recall, Inception Score),
tokenizer metrics (L1, PSNR, SSIM, codebook usage, rFID) and the feature alignment analysis,
with every setting that moves the numbers recorded beside them (REFERENCE.md's protocol):
``evaluate_checkpoint`` -> ``write_results`` (``tools/test.py``, the pipeline's evaluation).

Real statistics are cached per (dataset, split, count, resolution, resize filter, network
file). A metric that cannot be computed (no Inception file, a logit-less network, no prior) is
listed under ``unavailable`` with the reason; the rest of the evaluation still runs.
"""
import datetime
import json
import os.path as osp
import time
from typing import Iterator, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from gear.evaluation import (InceptionFeatures, ReconstructionMetric, ReferenceStats,
                             compute_generative_metrics, feature_statistics,
                             frechet_distance_from_features, load_or_compute_reference,
                             reference_key)
from gear.evaluation.feature_analysis import evaluation_parts, feature_alignment
from gear.evaluation.fid import cache_path
from gear.utils.checkpoint import file_sha256
from gear.registry import DATASETS
from gear.utils.checkpoint import atomic_write_bytes
from gear.version import __version__

from .loading import load_model
from .sampling import SamplingSettings, class_balanced_labels, sample_images, save_grid

PARTS = ('tokenizer', 'generator', 'features')
FASHION_MNIST_TEST = dict(type='FashionMNIST', data_root='/usr/share/datasets/fashion-mnist',
                          split='test', resolution=32)


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
        x, y = batch['img'].float(), torch.as_tensor(batch['label'])
        if max_images is not None:
            x, y = x[:max_images - n], y[:max_images - n]
        n += len(x)
        yield x, y
        if max_images is not None and n >= max_images:
            return


def dataset_reference(dataset: Dataset, num_images: int, inception: InceptionFeatures,
                      cache_dir: str, name: Optional[str] = None, split: Optional[str] = None,
                      batch_size: int = 100) -> dict:
    """Inception statistics and features of the first ``num_images`` of ``dataset``, cached:
    ``dict(stats=ReferenceStats, info=dict(file, sha256, key, cached, time_s))``; ``key`` names
    the dataset, split, count, resolution, resize filter and network file hash."""
    n = min(int(num_images), len(dataset))
    name = name or getattr(dataset, 'metainfo', {}).get('dataset_name') or type(dataset).__name__
    key = reference_key(name, split or getattr(dataset, 'split', 'unknown'), n,
                        dataset[0]['img'].shape[-1], inception)
    computed, start = [], time.perf_counter()

    def compute() -> Tensor:
        computed.append(True)
        return torch.cat([inception(x) for x, _ in iterate_batches(dataset, batch_size, n)])

    stats = load_or_compute_reference(cache_dir, key, compute, with_features=True)
    path = cache_path(cache_dir, key)
    return dict(stats=stats, info=dict(file=osp.abspath(path), sha256=file_sha256(path)[:16],
                                       key=key, cached=not computed,
                                       time_s=time.perf_counter() - start))


def first_images(reference: dict, n: int) -> dict:
    """A ``dataset_reference`` restricted to its first ``n`` images (same network and filter)."""
    feats = reference['stats'].features[:n]  # (n, D)
    return dict(stats=ReferenceStats(*feature_statistics(feats), feats),
                info=dict(reference['info'], first_images=n))


def evaluate_generator(model: nn.Module, settings: SamplingSettings, reference: Optional[dict],
                       inception: Optional[InceptionFeatures], num_samples: Optional[int] = None,
                       per_class: Optional[int] = None, device: str = 'cpu',
                       fid_method: str = 'auto', inception_error: str = 'no FID network given',
                       grid_path: Optional[str] = None) -> dict:
    """Sample class-balanced images and compute FID, precision / recall (and IS when possible).

    ``per_class`` samples per class, or ``num_samples`` cycling the classes, of ``model`` (GEAR
    or FrozenTokenizerAR on ``device``) against ``reference`` (a ``dataset_reference``); no
    ``inception``: every metric unavailable with ``inception_error``. ``fid_method``: 'sqrtm',
    'features', or 'auto' ('features' below 2048 samples). ``grid_path``: a PNG of samples.
    """
    ar = evaluation_parts(model, settings.use_ema)[1].ar
    if per_class is None and num_samples is None:
        raise ValueError('give num_samples or per_class')
    labels = (class_balanced_labels(ar.num_classes, int(per_class)) if per_class is not None
              else torch.arange(int(num_samples)) % ar.num_classes)  # (N,)
    out = dict(settings=settings.to_dict(), num_samples=len(labels), per_class=per_class)
    if inception is None or reference is None:
        names = ('fid', 'precision', 'recall', 'inception_score')
        return dict(out, unavailable=dict.fromkeys(names, inception_error))
    start = time.perf_counter()
    images = sample_images(model, labels, settings, device)  # (N, H, W, 3) uint8
    out['sampling_time_s'] = time.perf_counter() - start
    if grid_path is not None:  # with per_class: one class per row, up to 10 images each
        shown = (images.view(ar.num_classes, -1, *images.shape[1:])[:, :10].flatten(0, 1)
                 if per_class else images)  # (C * min(P, 10), H, W, 3)
        save_grid(shown, grid_path, nrow=min(int(per_class), 10) if per_class else 10)
        out['grid'] = osp.abspath(grid_path)
    if fid_method == 'auto':  # exact and fast below D samples: no D x D sqrtm
        small = min(len(labels), len(reference['stats'].features)) < inception.feature_dim
        fid_method = 'features' if small else 'sqrtm'
    start = time.perf_counter()
    out.update(compute_generative_metrics(images.split(100), reference['stats'], inception,
                                          fid_method=fid_method))
    out.update(metrics_time_s=time.perf_counter() - start, reference=reference['info'])
    return out


@torch.no_grad()
def evaluate_tokenizer(model: nn.Module, data: Union[Dataset, DataLoader],
                       inception: Optional[InceptionFeatures] = None,
                       reference: Optional[dict] = None, use_ema: bool = True,
                       max_images: Optional[int] = None, batch_size: int = 64,
                       device: str = 'cpu', inception_error: str = 'no FID network given') -> dict:
    """Reconstruction L1 / PSNR / SSIM, codebook usage / perplexity / entropy and rFID of the
    (EMA) tokenizer on the first ``max_images`` of ``data`` (a dataset or dataloader).
    ``reference``: a ``dataset_reference`` of the SAME images (cached real features), or None
    to compute them here; without ``inception`` rFID is unavailable (``inception_error``).
    """
    tokenizer = evaluation_parts(model, use_ema)[0]
    was_training, _ = tokenizer.training, tokenizer.eval()
    metric = ReconstructionMetric(codebook_size=tokenizer.codebook_size)
    real, fake = [], []
    try:
        for x, _ in iterate_batches(data, batch_size, max_images):
            x_hat, q = tokenizer(x.to(device))  # (B, 3, H, W), indices (B, h, w)
            metric.process(None, [dict(gt_img=g, pred_img=p, indices=i) for g, p, i in
                                  zip(x, x_hat.cpu(), q.indices.cpu())])
            if inception is not None:
                fake.append(inception(x_hat.clamp(-1, 1)))  # (B, 2048)
                if reference is None:
                    real.append(inception(x))
    finally:
        tokenizer.train(was_training)
    out = dict(metric.compute_metrics(metric.results), num_images=len(metric.results),
               use_ema=use_ema)
    if inception is None:
        return dict(out, unavailable=dict(rfid=inception_error))
    real = reference['stats'].features if reference is not None else torch.cat(real)
    out.update(rfid=frechet_distance_from_features(real, torch.cat(fake)), rfid_method='features'
               if min(len(real), len(metric.results)) < inception.feature_dim else 'sqrtm',
               **inception.settings())
    out['reference'] = reference['info'] if reference is not None else None
    return out


def default_dataset_cfg(model: nn.Module) -> dict:
    """The Fashion-MNIST test split at the model's resolution (token grid x downsampling)."""
    tokenizer, prior = evaluation_parts(model)
    res = tokenizer.downsample_factor * prior.ar.grid_size if prior is not None else 32
    return dict(FASHION_MNIST_TEST, resolution=int(res), num_samples=512)


def evaluate_checkpoint(checkpoint: str, config: Optional[str] = None,
                        dataset: Optional[dict] = None, sampling: Optional[dict] = None,
                        num_samples: Optional[int] = None, per_class: Optional[int] = 50,
                        reference_images: int = 10000, tokenizer_images: Optional[int] = None,
                        analysis_images: int = 64, cache_dir: str = 'work_dirs/fid_cache',
                        inception_weights: Optional[str] = None, resize_filter: str = 'bilinear',
                        fid_method: str = 'auto', grid_path: Optional[str] = None,
                        parts: Sequence[str] = PARTS, device: str = 'cpu', log=print) -> dict:
    """Tokenizer, generator and feature-alignment evaluation of one checkpoint -> results dict.

    ``dataset`` (a DATASETS config; default ``default_dataset_cfg``) gives the tokenizer images
    (its first ``tokenizer_images``, default its length), the FID reference (the same split
    without its ``num_samples`` cap, first ``reference_images``) and the analysis batch (first
    ``analysis_images``). ``sampling``: ``SamplingSettings`` fields. ``parts``: of ``PARTS``.
    """
    start = time.perf_counter()
    settings = SamplingSettings(**(sampling or {}))
    model = load_model(checkpoint, config, device)
    data_cfg = dict(dataset or default_dataset_cfg(model))
    ref_data = DATASETS.build(dict(data_cfg, num_samples=None))
    n_tok = min(int(tokenizer_images or data_cfg.get('num_samples') or 1e9), len(ref_data))
    inception, error = build_inception(inception_weights, resize_filter)
    has_prior = evaluation_parts(model)[1] is not None
    results = dict(
        gear_version=__version__,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        checkpoint=dict(path=osp.abspath(checkpoint), sha256=file_sha256(checkpoint)[:16],
                        config=config),
        model=type(model).__name__, use_ema=settings.use_ema, sampling=settings.to_dict(),
        num_samples=None, per_class=per_class, resize_filter=resize_filter, dataset=data_cfg,
        inception=dict(file=inception.weights_path, sha256=inception.feature_network_sha256[:16],
                       **inception.settings()) if inception else dict(unavailable=error),
        reference=None, device=str(device), unavailable={})
    unavailable, reference = results['unavailable'], None
    if inception is not None and has_prior and 'generator' in parts:
        log(f'[evaluate] FID reference: {reference_images} images of {data_cfg["type"]}')
        reference = dataset_reference(ref_data, reference_images, inception, cache_dir)
        results['reference'] = reference['info']
    if 'tokenizer' in parts:  # real features: the reference's first images when it has enough
        log(f'[evaluate] tokenizer: {n_tok} images')
        sliced = reference is not None and n_tok <= len(reference['stats'].features)
        tok_ref = (first_images(reference, n_tok) if sliced else
                   dataset_reference(ref_data, n_tok, inception, cache_dir) if inception else None)
        results['tokenizer'] = evaluate_tokenizer(model, ref_data, inception, tok_ref,
                                                  settings.use_ema, n_tok, device=device,
                                                  inception_error=error)
    if 'generator' in parts and not has_prior:
        unavailable['generator'] = f'{type(model).__name__} has no AR prior'
    elif 'generator' in parts:
        log(f'[evaluate] generator: {per_class or num_samples} samples'
            f'{" per class" if per_class else ""}, {settings.to_dict()}')
        results['generator'] = evaluate_generator(model, settings, reference, inception,
                                                  num_samples, per_class, device, fid_method,
                                                  error, grid_path)
        results['num_samples'] = results['generator']['num_samples']
    if 'features' in parts and not (has_prior and getattr(model, 'teachers', None)):
        unavailable['feature_alignment'] = f'{type(model).__name__} has no prior and teachers'
    elif 'features' in parts:
        x, y = next(iterate_batches(ref_data, int(analysis_images), int(analysis_images)))
        results['feature_alignment'] = feature_alignment(model, x.to(device), y.to(device),
                                                         settings.use_ema)
    for section in ('generator', 'tokenizer'):
        for metric, reason in results.get(section, {}).get('unavailable', {}).items():
            unavailable[f'{section}/{metric}'] = reason
    results['time_s'] = time.perf_counter() - start
    return results


def write_results(path: str, results: dict) -> None:
    """Write ``results`` as indented JSON, atomically."""
    atomic_write_bytes(json.dumps(results, indent=1, default=str).encode(), path)
