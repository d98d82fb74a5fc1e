"""Image sampling from a trained gear model, class- or caption-conditional, and its files.

    model = gear.apis.load_model('work_dirs/gear_vq_tiny_fashionmnist/final.pth')
    labels = class_balanced_labels(num_classes=10, per_class=50)        # 0,0,..,1,1,..
    images = sample_images(model, labels, SamplingSettings(cfg_scale=2.0, seed=0))
    save_npz(images, labels, 'samples.npz')                              # the ADM layout

A text-to-image model (one with a ``text_encoder``) samples from captions instead: ``labels`` is
then a list of N prompts (str), encoded batch by batch by the model's frozen text encoder, and
CFG's null condition is the AR's null caption.

Tokens come from ``gear.models.ar.generate`` (KV cache, classifier-free guidance, temperature,
top-k/p) and are decoded by the tokenizer. Results are reproducible: batch i draws from a
generator seeded ``seed + i``, so a run is fixed by its settings, batch size included
(``SamplingSettings.to_dict`` records all of them, as REFERENCE.md's protocol asks).

Under ``torchrun`` (a process group of W > 1 ranks) ``sample_images`` shards by batch: rank r
samples batches r, r + W, .. and every rank gathers all of them in order (``sharding.py``), so
the images are those of one process with the same settings.
"""
import dataclasses
import time
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from gear.models.ar import generate
from gear.models.generator import generator_parts
from gear.utils.checkpoint import atomic_open
from gear.utils.progress import progress_bar

from .sharding import Shard, map_in_order


@dataclass
class SamplingSettings:
    """Everything that decides which images a sampling run produces.

    Args:
        cfg_scale: classifier-free guidance scale (1.0: no guidance).
        cfg_schedule: 'constant' or 'linear' (MAR's 1 + (s - 1) * i / N).
        temperature: softmax temperature (0: greedy).
        top_k: keep the k most likely tokens (0: all).
        top_p: nucleus mass (1.0: all).
        seed: batch i samples with a generator seeded ``seed + i``.
        batch_size: images per batch (part of the seed schedule, so recorded).
        use_ema: sample with the EMA prior (and the EMA tokenizer for GEAR).
        use_cache: KV-cache decoding (same tokens as without, faster).
        cfg_interval: -1 guides every token; k >= 0 only tokens 0..k + 1 (LlamaGen's option).
        compile: run each decode step as one compiled graph (``generate(compile=)``: True or a
            dict of ``torch.compile`` kwargs); the same tokens, faster after a one-off compile.
    """
    cfg_scale: float = 1.0
    cfg_schedule: str = 'constant'
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 64
    use_ema: bool = True
    use_cache: bool = True
    cfg_interval: int = -1
    compile: Union[bool, dict] = False

    def to_dict(self) -> dict:
        """Every field by name (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def tag(self) -> str:
        """A short name for output folders, e.g. ``cfg2.0-constant_t1.0_k0_p1.0_seed0_ema``."""
        interval = f'-int{self.cfg_interval}' if self.cfg_interval >= 0 else ''
        return (f'cfg{self.cfg_scale:g}-{self.cfg_schedule}{interval}_t{self.temperature:g}'
                f'_k{self.top_k}_p{self.top_p:g}_seed{self.seed}_'
                f'{"ema" if self.use_ema else "online"}')


def class_balanced_labels(num_classes: int, per_class: int) -> torch.LongTensor:
    """Labels (num_classes * per_class,) in class order: ``per_class`` zeros, then ones, ..."""
    if num_classes < 1 or per_class < 1:
        raise ValueError(f'num_classes and per_class must be >= 1, got {num_classes}, {per_class}')
    return torch.arange(num_classes).repeat_interleave(per_class)  # (C * P,)


LABEL_MODES = ('balanced', 'uniform', 'cycle')


def make_labels(num_classes: int, label_mode: str = 'balanced', per_class: Optional[int] = None,
                num_samples: Optional[int] = None, seed: int = 0) -> torch.LongTensor:
    """The (N,) class labels of an evaluation run.

    ``'balanced'``: ``per_class`` of each class in class order (N = C * per_class); ``'uniform'``:
    ``num_samples`` labels drawn uniformly at random, as the official evaluation does, from a
    generator seeded ``seed`` (so the same for any batch size and number of processes);
    ``'cycle'``: ``num_samples`` labels 0, 1, .., C - 1, 0, ..
    """
    if label_mode not in LABEL_MODES:
        raise ValueError(f'label_mode must be one of {LABEL_MODES}, got {label_mode!r}')
    if label_mode == 'balanced':
        if per_class is None:
            raise ValueError("label_mode 'balanced' needs per_class")
        return class_balanced_labels(num_classes, int(per_class))
    if num_samples is None or int(num_samples) < 1:
        raise ValueError(f'label_mode {label_mode!r} needs num_samples >= 1, got {num_samples}')
    if label_mode == 'cycle':
        return torch.arange(int(num_samples)) % num_classes  # (N,)
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randint(0, num_classes, (int(num_samples),), generator=generator)  # (N,)


def to_uint8(x: Tensor) -> Tensor:
    """Images (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3): round(clamp((x + 1) * 127.5))."""
    x = ((x.float() + 1) * 127.5).clamp(0, 255).round().to(torch.uint8)  # (B, 3, H, W)
    return x.permute(0, 2, 3, 1).contiguous()  # (B, H, W, 3)


Conditions = Union[Tensor, Sequence[str]]  # (N,) class labels, or N prompts


def is_prompts(labels: Conditions) -> bool:
    return isinstance(labels, (list, tuple))


def _check(labels: Conditions, settings: SamplingSettings, ar: nn.Module,
           text_encoder: Optional[nn.Module] = None) -> None:
    if settings.batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {settings.batch_size}')
    if getattr(ar, 'caption_dim', None) is not None or is_prompts(labels):
        if not is_prompts(labels) or not labels or not all(isinstance(p, str) for p in labels):
            raise ValueError('a text-to-image model samples from prompts: give a non-empty list '
                             f'of str (e.g. tools/sample.py --prompts FILE), got {type(labels)}')
        if text_encoder is None or getattr(ar, 'caption_dim', None) is None:
            raise ValueError('prompts need a text-to-image model (model.text_encoder and '
                             'model.prior.ar.caption_dim); this one is class-conditional')
        return
    num_classes = ar.num_classes
    if labels.dim() != 1 or labels.numel() == 0:
        raise ValueError(f'labels must be a non-empty 1-D tensor, got shape {tuple(labels.shape)}')
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f'labels must be in [0, {num_classes}), got [{int(labels.min())}, '
                         f'{int(labels.max())}]')


def num_batches(labels: Conditions, settings: SamplingSettings) -> int:
    """Batches of a run: ceil(N / batch_size); batch i holds labels [i * B, (i + 1) * B)."""
    return -(-len(labels) // settings.batch_size)


@torch.no_grad()
def sample_batch(ar: nn.Module, tokenizer: nn.Module, labels: Conditions, i: int,
                 settings: SamplingSettings, device: Union[str, torch.device] = 'cpu',
                 text_encoder: Optional[nn.Module] = None) -> Tuple[Tensor, Tensor]:
    """Batch ``i`` of a run -> (tokens (B, N), uint8 images (B, H, W, 3)) on ``device``: the
    labels (prompts) ``[i * batch_size, (i + 1) * batch_size)``, a generator seeded ``seed + i``."""
    part = labels[i * settings.batch_size:(i + 1) * settings.batch_size]
    if is_prompts(part):
        emb, mask = text_encoder(list(part))  # (B, T, C), (B, T)
        cond, bsz = (emb.to(device), mask.to(device)), len(part)
    else:
        cond = part.to(device)  # (B,)
        bsz = cond.shape[0]
    side = ar.grid_size  # token grid (h, w) = (side, side)
    generator = torch.Generator(device=device).manual_seed(settings.seed + i)
    tokens = generate(ar, cond, cfg_scale=settings.cfg_scale,
                      cfg_schedule=settings.cfg_schedule, temperature=settings.temperature,
                      top_k=settings.top_k, top_p=settings.top_p, generator=generator,
                      use_cache=settings.use_cache, cfg_interval=settings.cfg_interval,
                      compile=settings.compile)  # (B, N)
    x = tokenizer.decode_indices(tokens.view(bsz, side, side))  # (B, 3, H, W)
    return tokens, to_uint8(x)


def sample_batches(ar: nn.Module, tokenizer: nn.Module, labels: Conditions,
                   settings: SamplingSettings, device: Union[str, torch.device] = 'cpu',
                   text_encoder: Optional[nn.Module] = None) -> Iterator[Tuple[Tensor, Tensor]]:
    """Yield (tokens (B, N), uint8 images (B, H, W, 3)) batch by batch, on ``device``.

    ``ar`` and ``tokenizer`` must already be on ``device``; batch i uses a generator seeded
    ``settings.seed + i``.
    """
    _check(labels, settings, ar, text_encoder)
    labels = labels if is_prompts(labels) else labels.to(dtype=torch.long)
    for i in range(num_batches(labels, settings)):
        yield sample_batch(ar, tokenizer, labels, i, settings, device, text_encoder)


def sample_images(model: nn.Module, labels: Conditions, settings: SamplingSettings,
                  device: Union[str, torch.device] = 'cpu', progress: bool = True,
                  distributed: Optional[bool] = None) -> Tensor:
    """Sample one image per label -> uint8 (N, H, W, 3) on the CPU.

    Args:
        model: a GEAR or FrozenTokenizerAR model on ``device`` (``load_model`` puts it there).
        labels: (N,) class labels, or N prompts (str) for a text-to-image model.
        settings: the sampling settings; the AR and tokenizer come from ``generator_parts``.
        device: where sampling runs (labels and the random generators go there).
        progress: a tqdm bar (images/s, ETA) on stderr, rank 0 only.
        distributed: shard the batches over the process group's ranks and gather them (every
            rank returns all N images, as one process samples them). None: whenever a group of
            more than one rank is initialised (then every rank must call this); False: sample
            all here (e.g. on rank 0 alone).
    """
    ar, tokenizer = generator_parts(model, settings.use_ema)
    text_encoder = getattr(model, 'text_encoder', None)
    _check(labels, settings, ar, text_encoder)
    labels = labels if is_prompts(labels) else labels.to(dtype=torch.long)
    shard = Shard.current(distributed)
    was_training = tokenizer.training
    tokenizer.eval()
    images = []
    try:
        with progress_bar(len(labels), 'sample', progress) as bar:
            for batch in map_in_order(
                    lambda i: sample_batch(ar, tokenizer, labels, i, settings, device,
                                           text_encoder)[1].cpu(),
                    range(num_batches(labels, settings)), shard):
                images.append(batch)  # (B, H, W, 3)
                bar.update(batch.shape[0])
    finally:
        tokenizer.train(was_training)
    return torch.cat(images)  # (N, H, W, 3)


def save_npz(images_uint8: Union[Tensor, np.ndarray], labels: Optional[Union[Tensor, np.ndarray]],
             path: str) -> None:
    """Write samples in the ADM evaluator's layout, atomically.

    ``arr_0``: (N, H, W, 3) uint8 images; ``arr_1``: (N,) int64 labels (none for prompts,
    ``labels=None``: the prompts are recorded beside it).
    """
    images = np.asarray(images_uint8.cpu() if isinstance(images_uint8, Tensor) else images_uint8)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f'images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}')
    arrays = [images]
    if labels is not None:
        labels = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels).astype(np.int64)
        if labels.shape != (images.shape[0],):
            raise ValueError(f'labels must be ({images.shape[0]},), got {labels.shape}')
        arrays.append(labels)
    with atomic_open(path) as f:
        np.savez(f, *arrays)  # arr_0[, arr_1]


def save_grid(images_uint8: Tensor, path: str, nrow: int = 10, max_images: int = 100) -> None:
    """A PNG grid of the first ``max_images`` uint8 (N, H, W, 3) images, ``nrow`` per row."""
    from torchvision.utils import save_image

    x = images_uint8[:max_images].permute(0, 3, 1, 2).float() / 255  # (n, 3, H, W) in [0, 1]
    with atomic_open(path) as f:
        save_image(x, f, nrow=nrow, padding=2, format='png')


def _synchronize(device) -> None:
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def benchmark_cache(model: nn.Module, labels: Tensor, settings: SamplingSettings,
                    device: Union[str, torch.device] = 'cpu', repeats: int = 2) -> dict:
    """Time sampling with and without the KV cache, same seed, alternating rounds.

    ``settings.compile`` applies to the cached mode (the uncached one cannot compile).
    Returns a dict with, per mode ('cache', 'no_cache'), the seconds of every round and the
    images/s of the fastest; ``speedup`` (cached over uncached images/s); and whether the two
    modes sampled the same tokens: ``identical_tokens`` and ``identical_images`` (the fraction
    of images whose tokens all agree; below 1 only through floating-point differences).
    """
    ar, tokenizer = generator_parts(model, settings.use_ema)
    tokenizer.eval()
    times = {'cache': [], 'no_cache': []}
    tokens = {}
    for _ in range(repeats):
        for mode in times:
            run = dataclasses.replace(settings, use_cache=mode == 'cache',
                                      compile=settings.compile if mode == 'cache' else False)
            _synchronize(device)
            start = time.perf_counter()
            out = [t.cpu() for t, _ in sample_batches(ar, tokenizer, labels, run, device)]
            _synchronize(device)
            times[mode].append(time.perf_counter() - start)
            tokens[mode] = torch.cat(out)  # (N, L)
    n = labels.numel()
    result = {mode: dict(seconds=t, images_per_s=n / min(t)) for mode, t in times.items()}
    result['speedup'] = result['cache']['images_per_s'] / result['no_cache']['images_per_s']
    same = (tokens['cache'] == tokens['no_cache']).all(1)  # (N,)
    result.update(identical_tokens=bool(same.all()), identical_images=same.float().mean().item())
    return result
