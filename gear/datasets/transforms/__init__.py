"""gear's registered data transforms, the steps ``mmcv.transforms`` lacks or does differently.

A dataset's ``pipeline`` is a list of transform configs resolved in ``gear.registry.TRANSFORMS``,
whose parent is mmengine's registry, so mmcv's transforms (``CenterCrop``, ``Pad``, ...) are
available by name next to these:

- :class:`LoadRGBImage`: mmcv's ``LoadImageFromFile`` decoding with PIL as RGB; a file that
  cannot be read raises :class:`UnreadableImageError` naming it.
- :class:`ResizeShortSide`: short side to a size with ``mmcv.imresize`` (PIL bicubic by default).
- :class:`RandomCrop`, :class:`RandomHFlip`: drawn from the ``torch`` RNG (mmcv's ``RandomFlip``
  draws from numpy's).
- :class:`SquareCenterCrop`: mmcv's ``CenterCrop`` whose size defaults to the dataset resolution.
- :class:`CenterPad`, :class:`TorchResize`: Fashion-MNIST's 28 px -> resolution steps.
- :class:`PackGearInputs`: the final ``dict(img=(3, R, R) float in [-1, 1], label=int)``.

Every image step draws and crops exactly as gear's datasets did before the pipelines, so the
same seed gives the same pixels.
"""
from .formatting import PackGearInputs, to_signed_tensor
from .geometric import CenterPad, ResizeShortSide, SquareCenterCrop, TorchResize
from .loading import LoadRGBImage, UnreadableImageError
from .augment import RandomCrop, RandomHFlip

__all__ = ['CenterPad', 'LoadRGBImage', 'PackGearInputs', 'RandomCrop', 'RandomHFlip',
           'ResizeShortSide', 'SquareCenterCrop', 'TorchResize', 'UnreadableImageError',
           'to_signed_tensor']
