"""Random crop and horizontal flip, drawn from the global ``torch`` RNG.

The DataLoader seeds ``torch`` per worker (and the runner seeds it from ``randomness.seed``), so
these draws are reproducible. mmcv's ``RandomFlip`` draws from numpy (``np.random.choice``) and
mmcv has no random crop, hence these two. Each call makes exactly the draws gear's datasets made
before the pipelines: the crop two ``torch.randint`` (top, then left) even when the image is
already the crop size, the flip one ``torch.rand(1)``.
"""
from typing import Optional

import mmcv
import torch
from mmcv.transforms import BaseTransform

from gear.registry import TRANSFORMS

from .geometric import _size


@TRANSFORMS.register_module()
class RandomCrop(BaseTransform):
    """A ``size x size`` window of ``img`` at a uniformly random position.

    Args:
        size: side of the square crop (default: the dataset's resolution).
    """
    resolution_arg = 'size'

    def __init__(self, size: Optional[int] = None):
        self.size = _size('RandomCrop', size)

    def transform(self, results: dict) -> dict:
        img = results['img']  # (H, W[, C])
        h, w = img.shape[:2]
        size = self.size
        if w < size or h < size:
            raise ValueError(f'RandomCrop: cannot crop {size}x{size} from a {w}x{h} image')
        top = int(torch.randint(0, h - size + 1, (1,)).item())
        left = int(torch.randint(0, w - size + 1, (1,)).item())
        results['img'] = img[top:top + size, left:left + size]  # (size, size[, C])
        results['img_shape'] = (size, size)
        results['crop_bbox'] = (left, top, left + size, top + size)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size})'


@TRANSFORMS.register_module()
class RandomHFlip(BaseTransform):
    """Mirror ``img`` left-right (``mmcv.imflip``) with probability ``prob``.

    One ``torch.rand(1)`` per call; the image is flipped when the draw is below ``prob``.

    Args:
        prob: flip probability, in ``[0, 1]``.
    """

    def __init__(self, prob: float = 0.5):
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
            raise ValueError(f'RandomHFlip: prob must be a number in [0, 1], got {prob!r}')
        self.prob = float(prob)

    def transform(self, results: dict) -> dict:
        flip = torch.rand(1).item() < self.prob
        if flip:
            results['img'] = mmcv.imflip(results['img'], direction='horizontal')
        results['flip'] = flip
        results['flip_direction'] = 'horizontal' if flip else None
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob})'
