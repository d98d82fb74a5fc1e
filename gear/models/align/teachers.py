"""Frozen alignment teachers: shared preprocessing, grid resampling and target normalisation.

A teacher maps images in [-1, 1], (B, 3, H, W), to patch features (B, N, C) on the tokenizer's
token grid: N = grid_size ** 2 in row-major order, matching the tokenizer's (B, H, W) index
order, so feature n is the target of the AR position that predicts token n.

Steps (``BaseTeacher.forward``):

1. ``preprocess``: [-1, 1] -> [0, 1]; resize to the teacher's ``image_size`` when the input has
   another size (``resize_mode``, default bicubic, ``antialias`` default off: the official GEAR
   release's ``F.interpolate(x, size, mode='bicubic')``); normalise with the teacher's mean / std.
   The release normalises before resizing for DINOv2 and after for CLIP; bicubic interpolation is
   linear with weights summing to one, so the two orders agree to float rounding.
2. ``extract`` (the subclass): the network's feature map (B, C, h, w).
3. ``resample``: to ``grid_size x grid_size``; adaptive average pooling when downsampling,
   bilinear interpolation when upsampling, nothing when the grid already matches.
4. ``target_norm`` of the target, per image and channel over the N positions
   (``normalize_target``):

   - None: none (the release's DINOv2 / DINOv3 setting);
   - ``'irepa_zscore'``: ``(z - alpha * mean) / (std + eps)``, std unbiased, alpha 0.6, eps 1e-6:
     the release's ``spatial_norm(mode='zscore')`` (``--repa-target-spnorm zscore``, which its
     ``train_gear.sh`` turns on for SigLIP2, CLIP and V-JEPA 2.1);
   - ``'irepa_demean'``: ``z - alpha * mean`` (the release's ``mode='demean'``);
   - ``'zscore'``: gear's full z-score, ``(z - mean) / sqrt(var_biased + eps)``: zero mean, unit
     std per channel.

Steps 1-2 can be read from an on-disk cache (``cache_dir=`` in a teacher's config, see
``feature_cache.py``) when the input carries no gradient.

Teachers are ``FrozenNet``s: eval mode, no weight gradients, absent from the owner's
``state_dict``. ``forward`` is not wrapped in ``no_grad``: with an input that does not require
grad no graph is built, and one that does gets its gradient (the weights never do).
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gear.models.align.feature_cache import TeacherFeatureCache
from gear.utils.frozen import FrozenNet

TARGET_NORMS = (None, 'zscore', 'irepa_zscore', 'irepa_demean')
RESIZE_MODES = ('bicubic', 'bilinear', 'nearest', 'nearest-exact', 'area')


def resample_grid(feat: Tensor, grid_size: int) -> Tensor:
    """(B, C, h, w) -> (B, C, grid_size, grid_size): area pooling down, bilinear up."""
    h, w = feat.shape[-2:]
    if (h, w) == (grid_size, grid_size):
        return feat
    if h >= grid_size and w >= grid_size:
        return F.adaptive_avg_pool2d(feat, grid_size)  # (B, C, g, g)
    return F.interpolate(feat, size=(grid_size, grid_size), mode='bilinear',
                         align_corners=False)  # (B, C, g, g)


def spatial_zscore(feat: Tensor, eps: float = 1e-6) -> Tensor:
    """Per-image, per-channel z-score over positions: (B, N, C) -> (B, N, C)."""
    mean = feat.mean(dim=1, keepdim=True)  # (B, 1, C)
    var = feat.var(dim=1, unbiased=False, keepdim=True)  # (B, 1, C)
    return (feat - mean) / torch.sqrt(var + eps)  # (B, N, C)


def normalize_target(feat: Tensor, mode: Optional[str], alpha: float = 0.6,
                     eps: float = 1e-6) -> Tensor:
    """Target normalisation over the positions of each image and channel: (B, N, C) -> (B, N, C).

    ``mode`` is one of ``TARGET_NORMS`` (see the module docstring); ``alpha`` and ``eps`` apply
    to the ``'irepa_*'`` modes, ``eps`` also to ``'zscore'``.
    """
    if mode is None:
        return feat
    if mode == 'zscore':
        return spatial_zscore(feat, eps)
    if mode not in TARGET_NORMS:
        raise ValueError(f'target_norm must be one of {TARGET_NORMS}, got {mode!r}')
    shifted = feat - alpha * feat.mean(dim=1, keepdim=True)  # (B, N, C)
    if mode == 'irepa_demean':
        return shifted
    # std of the shifted features = std of the features (a constant shift per channel)
    return shifted / (shifted.std(dim=1, keepdim=True) + eps)  # unbiased std, (B, N, C)


class BaseTeacher(FrozenNet):
    """Common part of the teachers; subclasses build the net, set ``feature_dim``, ``extract``.

    Args:
        image_size (int): side the image is resized to before the network.
        grid_size (int): side of the token grid the features are resampled to.
        mean (sequence of 3 floats): normalisation mean, on [0, 1] pixels.
        std (sequence of 3 floats): normalisation std, on [0, 1] pixels.
        zscore (bool): shorthand for ``target_norm='zscore'`` (gear's full z-score).
        resize_mode (str): ``F.interpolate`` mode of the resize to ``image_size``.
        antialias (bool): antialiased resize (bilinear / bicubic only); off in the release.
        target_norm (str, optional): one of ``TARGET_NORMS``; see the module docstring.
        target_norm_alpha (float): mean-subtraction strength of the ``'irepa_*'`` modes.
        target_norm_eps (float): epsilon of the target normalisation.
    """

    feature_dim: int
    feature_cache = None  # a TeacherFeatureCache, set by ``use_cache``
    builder_args = ('cache_dir',)  # config keys ``build_teachers`` takes out (config_check)

    def __init__(self, image_size: int, grid_size: int, mean: Sequence[float],
                 std: Sequence[float], zscore: bool = False, resize_mode: str = 'bicubic',
                 antialias: bool = False, target_norm: Optional[str] = None,
                 target_norm_alpha: float = 0.6, target_norm_eps: float = 1e-6):
        super().__init__()
        if target_norm == 'none':
            target_norm = None
        if zscore:
            if target_norm not in (None, 'zscore'):
                raise ValueError(f'zscore=True and target_norm={target_norm!r}: give one')
            target_norm = 'zscore'
        if target_norm not in TARGET_NORMS:
            raise ValueError(f'target_norm must be one of {TARGET_NORMS}, got {target_norm!r}')
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f'resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}')
        if antialias and resize_mode not in ('bilinear', 'bicubic'):
            raise ValueError(f"antialias=True needs resize_mode 'bilinear' or 'bicubic', "
                             f'got {resize_mode!r}')
        self.image_size = int(image_size)
        self.grid_size = int(grid_size)
        self.resize_mode = resize_mode
        self.antialias = bool(antialias)
        self.target_norm = target_norm
        self.target_norm_alpha = float(target_norm_alpha)
        self.target_norm_eps = float(target_norm_eps)
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)  # (1, 3, 1, 1)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)  # (1, 3, 1, 1)

    @property
    def zscore(self) -> bool:
        return self.target_norm == 'zscore'

    @property
    def num_patches(self) -> int:
        return self.grid_size ** 2

    def preprocess(self, x: Tensor) -> Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> the network's input (B, 3, S, S), S = image_size."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'{type(self).__name__} expects images (B, 3, H, W), '
                             f'got {tuple(x.shape)}')
        x = (x.float() + 1.0) / 2.0  # (B, 3, H, W) in [0, 1]
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            linear = self.resize_mode in ('bilinear', 'bicubic')
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode=self.resize_mode,
                              align_corners=False if linear else None,
                              antialias=self.antialias)  # (B, 3, S, S)
        return (x - self.mean) / self.std  # (B, 3, S, S)

    def extract(self, x: Tensor) -> Tensor:
        """Preprocessed images (B, 3, S, S) -> feature map (B, C, h, w)."""
        raise NotImplementedError

    def use_cache(self, cache_dir: str) -> 'BaseTeacher':
        """Read and write this teacher's feature maps under ``cache_dir`` (see feature_cache.py)."""
        self.feature_cache = TeacherFeatureCache(cache_dir)
        return self

    def feature_map(self, x: Tensor) -> Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> the network's map (B, C, h, w), cached if asked."""
        if self.feature_cache is None or x.requires_grad:
            return self.extract(self.preprocess(x))
        return self.feature_cache.lookup(self, x, lambda xs: self.extract(self.preprocess(xs)))

    def forward(self, x: Tensor) -> Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> patch features (B, grid_size ** 2, feature_dim)."""
        return self.targets_from_map(self.feature_map(x))

    def targets_from_map(self, feat: Tensor) -> Tensor:
        """Steps 3-4 of ``forward``: the network's map (B, C, h, w) -> patch features
        (B, grid_size ** 2, C). Pre-extracted codes store the map (smaller than the grid when
        the map is upsampled) and finish with this, exactly as ``forward`` does."""
        feat = resample_grid(feat, self.grid_size)  # (B, C, g, g)
        feat = feat.flatten(2).transpose(1, 2)  # (B, N, C), row-major over (g, g)
        return normalize_target(feat, self.target_norm, self.target_norm_alpha,
                                self.target_norm_eps)  # (B, N, C)

    def extra_repr(self) -> str:
        norm = self.target_norm
        if norm is not None and norm != 'zscore':
            norm = f'{norm}(alpha={self.target_norm_alpha})'
        return (f'feature_dim={self.feature_dim}, image_size={self.image_size}, '
                f'grid_size={self.grid_size}, resize={self.resize_mode}'
                f"{'+antialias' if self.antialias else ''}, target_norm={norm}")
