"""Reading an image file into an RGB ``uint8`` array."""
import io
from typing import Optional

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from PIL import Image

from gear.registry import TRANSFORMS


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
    ``ori_shape`` (``(H, W)``). An unreadable file raises ``OSError`` naming it.

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
                arr = np.array(img.convert('RGB'), dtype=np.uint8)  # (H, W, 3)
        except Exception as e:  # OSError, ValueError, SyntaxError, DecompressionBombError...
            raise OSError(f'cannot read image {path}: {type(e).__name__}: {e}') from e
        results['img'] = arr
        results['img_shape'] = arr.shape[:2]
        results['ori_shape'] = arr.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(backend_args={self.backend_args})'
