"""Packing a pipeline's results into the tensors gear's models read."""
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from gear.registry import TRANSFORMS


def to_signed_tensor(img: np.ndarray) -> torch.Tensor:
    """A ``uint8`` array (H, W) or (H, W, C) -> float tensor (C, H, W) in ``[-1, 1]``.

    ``uint8 / 127.5 - 1``: 0 maps to -1 and 255 to 1 (grey images get C = 1).
    """
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim not in (2, 3):
        what = (f'{img.dtype} array of shape {img.shape}' if isinstance(img, np.ndarray)
                else type(img).__name__)
        raise ValueError(f'expected a uint8 image array (H, W) or (H, W, C), got {what}')
    arr = np.ascontiguousarray(img)
    if not arr.flags.writeable:  # e.g. a view of an idx file's bytes
        arr = arr.copy()
    t = torch.from_numpy(arr)
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)  # (C, H, W)
    return t.float().div_(127.5).sub_(1.0)


@TRANSFORMS.register_module()
class PackGearInputs(BaseTransform):
    """The last step: ``dict(img=FloatTensor (3, H, W) in [-1, 1], label=int)``, or with a caption
    ``dict(img=..., caption=str)`` (plus ``label`` when the results have one too).

    ``img`` is a ``uint8`` array (H, W) or (H, W, C), scaled by :func:`to_signed_tensor`, or a
    float tensor (C, H, W) already in ``[-1, 1]`` (from :class:`~.geometric.TorchResize`). A grey
    image (C = 1) is repeated over the channels. ``label`` is required unless the results hold a
    ``caption`` (text-to-image data, e.g. :class:`~gear.datasets.CaptionShards`), which must be a
    ``str``; mmengine's ``default_collate`` batches captions as a list of ``str``. Every other key
    of the results is dropped.

    Args:
        num_channels: channels of the output image; 1-channel images are repeated to it.
    """

    def __init__(self, num_channels: int = 3):
        if isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f'PackGearInputs: num_channels must be a positive int, got '
                             f'{num_channels!r}')
        self.num_channels = num_channels

    def transform(self, results: dict) -> dict:
        has_caption = 'caption' in results
        for key in ('img',) if has_caption else ('img', 'label'):
            if key not in results:
                raise KeyError(f"PackGearInputs needs the key {key!r} in the results, got keys "
                               f'{sorted(results)}')
        if has_caption and not isinstance(results['caption'], str):
            raise ValueError(f"PackGearInputs: 'caption' must be a str, got "
                             f"{type(results['caption']).__name__}")
        img = results['img']
        if not isinstance(img, torch.Tensor):
            img = to_signed_tensor(img)
        c, h, w = img.shape
        if c == 1 and self.num_channels != 1:
            img = img.expand(self.num_channels, h, w)
        elif c != self.num_channels:
            raise ValueError(f'PackGearInputs: the image has {c} channels, expected 1 or '
                             f'{self.num_channels}')
        packed = dict(img=img.contiguous())
        if 'label' in results:
            packed['label'] = int(results['label'])
        if has_caption:
            packed['caption'] = results['caption']
        return packed

    def __repr__(self) -> str:
        return f'{type(self).__name__}(num_channels={self.num_channels})'
