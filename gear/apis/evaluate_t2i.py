"""Text-to-image evaluation: sample one image per caption of a caption set, then FID (and
precision / recall) against that set's images, and CLIPScore against the captions.

    results = evaluate_t2i(model, CaptionShards(shards='data/coco/val-*.tar', resolution=256),
                           num_samples=1000, settings=SamplingSettings(cfg_scale=1.75, top_k=2000))

The first ``num_samples`` items give both the prompts (in order) and the reference images, as
the official release's COCO-FID (1000 captions, CFG 1.75). CLIPScore needs a ``transformers``
CLIP model (``clip_model``: a local directory or hub id); without one it is reported
unavailable with the reason, as FID is without its Inception network.
"""
import hashlib
from typing import Optional

from torch import nn
from torch.utils.data import Dataset

from gear.evaluation.clip_score import build_clip_scorer
from gear.evaluation.protocol import build_inception, dataset_reference, evaluate_generator
from gear.evaluation.sampling import SamplingSettings


def caption_prompts(dataset: Dataset, n: int) -> list:
    """The captions of the first ``n`` items (undecoded when the dataset can: ``raw``)."""
    read = getattr(dataset, 'raw', None) or dataset.__getitem__
    prompts = [read(i)['caption'] for i in range(n)]
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    if bad:
        raise ValueError(f'item {bad[0]} of the caption set has no str caption')
    return prompts


def evaluate_t2i(model: nn.Module, dataset: Dataset, num_samples: int,
                 settings: SamplingSettings, device: str = 'cpu',
                 clip_model: Optional[str] = None, inception_weights: Optional[str] = None,
                 cache_dir: str = 'work_dirs/fid_cache', grid_path: Optional[str] = None,
                 progress: bool = True) -> dict:
    """FID / precision / recall / CLIPScore of ``model`` (a T2I stage model) on the first
    ``num_samples`` (image, caption) pairs of ``dataset``; every setting is in the result."""
    n = min(int(num_samples), len(dataset))
    prompts = caption_prompts(dataset, n)
    inception, error = build_inception(inception_weights)
    reference = None
    if inception is not None:
        shards = ','.join(map(str, getattr(dataset, 'shards', [])))  # the set's identity
        name = f'{type(dataset).__name__}-{hashlib.sha256(shards.encode()).hexdigest()[:12]}'
        reference = dataset_reference(dataset, n, inception, cache_dir, name=name,
                                      split='captions', progress=progress)
    scorer, clip_error = build_clip_scorer(clip_model, device)
    out = evaluate_generator(model, settings, reference, inception, prompts, device,
                             inception_error=error or '', grid_path=grid_path, progress=progress,
                             clip_scorer=scorer)
    if 'clip_score' not in out:  # no CLIP model, or no samples (no FID network: nothing ran)
        out.setdefault('unavailable', {})['clip_score'] = clip_error or error
    out.update(num_prompts=n, clip_model=clip_model, prompts_first=prompts[:10])
    return out
