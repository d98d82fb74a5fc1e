"""Deterministic geometry: short-side resize, square centre crop, centre padding, tensor resize.

A transform with a ``resolution_arg`` takes its output size from the dataset's ``resolution``
when its config leaves that argument out (see :func:`gear.datasets.pipeline.build_pipeline`).
"""
from typing import Optional

import mmcv
import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform, CenterCrop

from gear.registry import TRANSFORMS

from .formatting import to_signed_tensor


def _size(name: str, size: Optional[int]) -> int:
    if size is None:
        raise ValueError(f'{name}: size is None; give it, or build the transform through a gear '
                         "dataset's pipeline, which fills in the dataset's resolution")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f'{name}: size must be a positive int, got {size!r}')
    return size


@TRANSFORMS.register_module()
class ResizeShortSide(BaseTransform):
    """Resize ``img`` so that its shorter side is ``size``, keeping the aspect ratio.

    The longer side is ``max(size, round(long * size / short))`` (Python rounding); an image whose
    short side already is ``size`` is left untouched. Resizing is ``mmcv.imresize``; with the
    default PIL backend and ``'bicubic'`` it is ``PIL.Image.resize(..., Image.BICUBIC)``, which
    antialiases when it downsamples (the official preprocessing).

    Args:
        size: target short side (default: the dataset's resolution).
        interpolation: ``mmcv.imresize`` interpolation (``'bicubic'``, ``'bilinear'``, ...).
        backend: ``'pillow'`` or ``'cv2'``.
    """
    resolution_arg = 'size'

    def __init__(self, size: Optional[int] = None, interpolation: str = 'bicubic',
                 backend: str = 'pillow'):
        self.size = _size('ResizeShortSide', size)
        if backend not in ('pillow', 'cv2'):
            raise ValueError(f"ResizeShortSide: backend must be 'pillow' or 'cv2', got {backend!r}")
        self.interpolation, self.backend = interpolation, backend

    def transform(self, results: dict) -> dict:
        img = results['img']  # (H, W[, C]) uint8
        h, w = img.shape[:2]
        size = self.size
        if min(w, h) != size:
            scale = size / min(w, h)
            new_w = size if w <= h else max(size, round(w * scale))
            new_h = size if h <= w else max(size, round(h * scale))
            img = mmcv.imresize(img, (new_w, new_h), interpolation=self.interpolation,
                                backend=self.backend)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, interpolation={self.interpolation!r}, '
                f'backend={self.backend!r})')


@TRANSFORMS.register_module()
class SquareCenterCrop(CenterCrop):
    """mmcv's ``CenterCrop`` to ``size x size`` (offsets ``round((H - size) / 2)``, as
    torchvision), with the size defaulting to the dataset's resolution.

    Args:
        size: side of the square crop (default: the dataset's resolution).
    """
    resolution_arg = 'size'

    def __init__(self, size: Optional[int] = None):
        super().__init__(crop_size=_size('SquareCenterCrop', size))

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        if h < self.crop_size[1] or w < self.crop_size[0]:
            raise ValueError(f'SquareCenterCrop: cannot crop {self.crop_size[0]}x'
                             f'{self.crop_size[1]} from a {w}x{h} image')
        return super().transform(results)


@TRANSFORMS.register_module()
class CenterPad(BaseTransform):
    """Pad ``img`` with ``pad_val`` to ``size x size``, centred (``mmcv.impad``).

    The extra rows/columns are split evenly, the odd one going to the bottom/right. Fashion-MNIST
    uses it for 28 -> 32 px: 2 pixels of background (0, i.e. -1 after packing) on every side.

    Args:
        size: output side (default: the dataset's resolution); not smaller than the image.
        pad_val: value of the added pixels.
    """
    resolution_arg = 'size'

    def __init__(self, size: Optional[int] = None, pad_val: int = 0):
        self.size, self.pad_val = _size('CenterPad', size), pad_val

    def transform(self, results: dict) -> dict:
        img = results['img']  # (H, W[, C])
        h, w = img.shape[:2]
        if h > self.size or w > self.size:
            raise ValueError(f'CenterPad: cannot pad a {w}x{h} image to {self.size}x{self.size} '
                             '(size is smaller); resize it instead (e.g. TorchResize)')
        top, left = (self.size - h) // 2, (self.size - w) // 2
        img = mmcv.impad(img, padding=(left, top, self.size - w - left, self.size - h - top),
                         pad_val=self.pad_val)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size}, pad_val={self.pad_val})'


@TRANSFORMS.register_module()
class TorchResize(BaseTransform):
    """Scale ``img`` to ``[-1, 1]`` floats and resize them with ``F.interpolate`` to a square.

    Fashion-MNIST's resize at a resolution other than 28 and 32: antialiased bicubic on the
    ``[-1, 1]`` values, then clamped to ``[-1, 1]``. ``img`` becomes a float tensor (C, R, R),
    which :class:`PackGearInputs` takes as it is.

    Args:
        size: output side (default: the dataset's resolution).
        mode: ``F.interpolate`` mode.
        antialias: ``F.interpolate`` antialiasing.
    """
    resolution_arg = 'size'

    def __init__(self, size: Optional[int] = None, mode: str = 'bicubic', antialias: bool = True):
        self.size, self.mode, self.antialias = _size('TorchResize', size), mode, bool(antialias)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if not isinstance(img, torch.Tensor):
            img = to_signed_tensor(img)  # (C, H, W) in [-1, 1]
        kwargs = dict(align_corners=False) if self.mode in ('bilinear', 'bicubic') else dict()
        img = F.interpolate(img[None], size=(self.size, self.size), mode=self.mode,
                            antialias=self.antialias, **kwargs)[0].clamp_(-1.0, 1.0)
        results['img'] = img  # (C, R, R)
        results['img_shape'] = tuple(img.shape[-2:])
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, mode={self.mode!r}, '
                f'antialias={self.antialias})')
