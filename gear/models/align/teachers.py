"""Frozen alignment teachers: shared preprocessing, grid resampling and target z-scoring.

A teacher maps images in [-1, 1], (B, 3, H, W), to patch features (B, N, C) on the tokenizer's
token grid: N = grid_size ** 2 in row-major order, matching the tokenizer's (B, H, W) index
order, so feature n is the target of the AR position that predicts token n.

Steps (``BaseTeacher.forward``):

1. ``preprocess``: [-1, 1] -> [0, 1], bicubic resize (antialias=True) to the teacher's
   ``image_size`` (224 px in GEAR), normalise with the teacher's mean / std.
2. ``extract`` (the subclass): the network's feature map (B, C, h, w).
3. ``resample``: to ``grid_size x grid_size``; adaptive average pooling when downsampling,
   bilinear interpolation when upsampling, nothing when the grid already matches.
4. optional per-channel spatial z-score of the target (REFERENCE.md: used for the non-DINO
   teachers): every channel gets zero mean and unit std over the N positions of each image.

Steps 1-2 can be read from an on-disk cache (``cache_dir=`` in a teacher's config, see
``feature_cache.py``) when the input carries no gradient.

Teachers are ``FrozenNet``s: eval mode, no weight gradients, absent from the owner's
``state_dict``. ``forward`` is not wrapped in ``no_grad``: with an input that does not require
grad no graph is built, and one that does gets its gradient (the weights never do).
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gear.models.align.feature_cache import TeacherFeatureCache
from gear.utils.frozen import FrozenNet


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


class BaseTeacher(FrozenNet):
    """Common part of the teachers; subclasses build the net, set ``feature_dim``, ``extract``.

    Args:
        image_size (int): side the image is resized to before the network.
        grid_size (int): side of the token grid the features are resampled to.
        mean (sequence of 3 floats): normalisation mean, on [0, 1] pixels.
        std (sequence of 3 floats): normalisation std, on [0, 1] pixels.
        zscore (bool): per-channel spatial z-score of the output.
    """

    feature_dim: int
    feature_cache = None  # a TeacherFeatureCache, set by ``use_cache``
    builder_args = ('cache_dir',)  # config keys ``build_teachers`` takes out (config_check)

    def __init__(self, image_size: int, grid_size: int, mean: Sequence[float],
                 std: Sequence[float], zscore: bool = False):
        super().__init__()
        self.image_size = int(image_size)
        self.grid_size = int(grid_size)
        self.zscore = bool(zscore)
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)  # (1, 3, 1, 1)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)  # (1, 3, 1, 1)

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
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode='bicubic',
                              align_corners=False, antialias=True)  # (B, 3, S, S)
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
        feat = resample_grid(self.feature_map(x), self.grid_size)  # (B, C, g, g)
        feat = feat.flatten(2).transpose(1, 2)  # (B, N, C), row-major over (g, g)
        return spatial_zscore(feat) if self.zscore else feat

    def extra_repr(self) -> str:
        return (f'feature_dim={self.feature_dim}, image_size={self.image_size}, '
                f'grid_size={self.grid_size}, zscore={self.zscore}')
