"""Reading an image file into an RGB ``uint8`` array, or an :class:`UnreadableImageError` naming it.

"Unreadable" covers what a file's bytes can do wrong: missing or empty, not an image, truncated
or otherwise undecodable, and the wrong mode: samples wider than 8 bits (PIL modes ``I;16*``,
``I``, ``F``: 16-bit grey PNGs, 32-bit or float TIFFs), which ``convert('RGB')`` would clip to
255 without a word. 8-bit grey, palette, CMYK, YCbCr, bilevel and alpha images are converted to
RGB as the reference pipelines do (``Image.open(p).convert('RGB')``; real ImageNet holds a few
CMYK and grey JPEGs).
"""
import io
from typing import Optional

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from PIL import Image

from gear.registry import TRANSFORMS


def _wider_than_8_bits(mode: str) -> bool:
    """PIL modes of 16-bit, 32-bit and float samples (``I;16*``, ``I``, ``F``), which
    ``convert('RGB')`` clips to 0..255."""
    return mode in ('I', 'F') or mode.startswith('I;')


class UnreadableImageError(OSError):
    """An image file that cannot be read as an 8-bit RGB image; the message names the file.

    The datasets' ``skip_corrupt`` policy skips these and nothing else."""


@TRANSFORMS.register_module()
class LoadRGBImage(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that decodes with PIL to RGB and names the file it cannot read.

    The bytes come from ``mmengine.fileio.get`` as in mmcv; they are decoded with
    ``PIL.Image.open(...).convert('RGB')``, the decoding gear's datasets always used. mmcv's own
    loader differs in ways that change pixels or hide the file: it decodes with OpenCV and returns
    BGR by default, applies the EXIF orientation for ``color_type='color'``, composites grey+alpha
    (``LA``) images on a fixed grey instead of dropping the alpha, and re-raises a decoder error
    without the path.

    Reads ``img_path``; sets ``img`` (``uint8`` array (H, W, 3), RGB), ``img_shape`` and
    ``ori_shape`` (``(H, W)``). An unreadable file (see the module docstring: undecodable, or
    samples wider than 8 bits) raises :class:`UnreadableImageError` (an ``OSError``) naming it.

    Args:
        backend_args: mmengine file backend arguments (``None``: the local disk).
    """

    def __init__(self, backend_args: Optional[dict] = None):
        super().__init__(to_float32=False, color_type='color', imdecode_backend='pillow',
                         backend_args=backend_args)

    def transform(self, results: dict) -> dict:
        path = results.get('img_path')
        if path is None:
            raise KeyError(f"LoadRGBImage needs the key 'img_path' in the results, got keys "
                           f'{sorted(results)}')
        try:
            content = fileio.get(path, backend_args=self.backend_args)
            with Image.open(io.BytesIO(content)) as img:
                mode = img.mode
                if not _wider_than_8_bits(mode):
                    arr = np.array(img.convert('RGB'), dtype=np.uint8)  # (H, W, 3)
        except Exception as e:  # OSError, ValueError, SyntaxError, DecompressionBombError...
            raise UnreadableImageError(f'cannot read image {path}: {type(e).__name__}: '
                                       f'{e}') from e
        if _wider_than_8_bits(mode):
            raise UnreadableImageError(
                f'cannot read image {path}: PIL mode {mode!r} has samples wider than 8 bits, '
                'which the conversion to 8-bit RGB would clip at 255; save it as 8-bit '
                '(grey "L" or "RGB")')
        results['img'] = arr
        results['img_shape'] = arr.shape[:2]
        results['ori_shape'] = arr.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(backend_args={self.backend_args})'
