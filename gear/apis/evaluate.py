"""Evaluate a trained checkpoint: generator metrics (FID, precision / recall, Inception Score),
tokenizer metrics (L1, PSNR, SSIM, codebook usage, rFID) and the feature alignment analysis,
with every setting that moves the numbers recorded beside them (REFERENCE.md's protocol):
``evaluate_checkpoint`` -> ``write_results`` (``tools/test.py``, the pipeline's evaluation).
The pieces are in ``gear.evaluation.protocol``.

Real statistics are cached per (dataset, split, count, resolution, resize filter, network
file). A metric that cannot be computed (no Inception file, a logit-less network, no prior) is
listed under ``unavailable`` with the reason; the rest of the evaluation still runs.
"""
import datetime
import json
import os.path as osp
import time
from typing import Optional, Sequence

from torch import nn

from gear.evaluation.feature_analysis import evaluation_parts, feature_alignment
from gear.evaluation.protocol import (PARTS, build_inception, dataset_reference,  # noqa: F401
                                      evaluate_generator, evaluate_tokenizer, first_images,
                                      iterate_batches)
from gear.evaluation.sampling import SamplingSettings
from gear.registry import DATASETS
from gear.utils.checkpoint import atomic_write_bytes, file_sha256
from gear.version import __version__

from .loading import load_model

FASHION_MNIST_TEST = dict(type='FashionMNIST', data_root='/usr/share/datasets/fashion-mnist',
                          split='test', resolution=32)

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
