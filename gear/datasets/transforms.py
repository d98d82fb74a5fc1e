"""Image helpers shared by gear's datasets: listing, loading, resizing, cropping, tensor conversion.

Every dataset returns images as a float tensor ``(3, R, R)`` in ``[-1, 1]`` (``uint8 / 127.5 - 1``,
so 0 maps to -1 and 255 to 1). Resizing is PIL's plain bicubic filter (``Image.BICUBIC``, no
``reducing_gap``), which PIL antialiases when it downsamples. Random choices draw from the global
``torch`` RNG so that the framework's per-worker seeding makes them reproducible.
"""
import os
from fnmatch import fnmatch
from typing import List, Optional

import numpy as np
import torch
from PIL import Image

#: File extensions recognised as images (compared case-insensitively).
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


def is_image_file(name: str) -> bool:
    """Whether ``name`` ends in one of :data:`IMG_EXTENSIONS` (any case)."""
    return name.lower().endswith(IMG_EXTENSIONS)


def list_images(folder: str, pattern: Optional[str] = None) -> List[str]:
    """Sorted paths of the image files directly inside ``folder``.

    Args:
        folder: directory to scan (not recursive).
        pattern: optional glob on the file name (e.g. ``'*.png'``); when ``None`` every file with
            an image extension is taken.
    """
    with os.scandir(folder) as it:
        names = [e.name for e in it if e.is_file()]
    if pattern is None:
        names = [n for n in names if is_image_file(n)]
    else:
        names = [n for n in names if fnmatch(n, pattern)]
    return [os.path.join(folder, n) for n in sorted(names)]


def load_rgb(path: str) -> Image.Image:
    """Read ``path`` with PIL as an RGB image; an unreadable file raises ``OSError`` naming it."""
    try:
        with Image.open(path) as img:
            return img.convert('RGB')
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError...
        raise OSError(f'cannot read image {path}: {type(e).__name__}: {e}') from e


def resize_short_side(img: Image.Image, size: int) -> Image.Image:
    """Bicubic-resize ``img`` so that its shorter side is ``size`` (aspect ratio kept, rounded)."""
    w, h = img.size
    if min(w, h) == size:
        return img
    scale = size / min(w, h)
    new_w = size if w <= h else max(size, round(w * scale))
    new_h = size if h <= w else max(size, round(h * scale))
    return img.resize((new_w, new_h), Image.BICUBIC)


def crop_box(img: Image.Image, top: int, left: int, size: int) -> Image.Image:
    """The ``size x size`` window of ``img`` whose top-left corner is ``(top, left)``."""
    return img.crop((left, top, left + size, top + size))


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """Central ``size x size`` window (offsets rounded as torchvision does)."""
    w, h = img.size
    if w < size or h < size:
        raise ValueError(f'cannot crop {size}x{size} from a {w}x{h} image')
    return crop_box(img, int(round((h - size) / 2.0)), int(round((w - size) / 2.0)), size)


def random_crop(img: Image.Image, size: int) -> Image.Image:
    """A ``size x size`` window at a uniformly random position (``torch`` RNG)."""
    w, h = img.size
    if w < size or h < size:
        raise ValueError(f'cannot crop {size}x{size} from a {w}x{h} image')
    top = int(torch.randint(0, h - size + 1, (1,)).item())
    left = int(torch.randint(0, w - size + 1, (1,)).item())
    return crop_box(img, top, left, size)


def random_hflip(img: Image.Image, p: float = 0.5) -> Image.Image:
    """Mirror ``img`` left-right with probability ``p`` (``torch`` RNG)."""
    if torch.rand(1).item() < p:
        return img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def to_tensor(img) -> torch.Tensor:
    """An RGB PIL image or ``(H, W, 3)`` uint8 array -> float ``(3, H, W)`` in ``[-1, 1]``."""
    arr = np.array(img, dtype=np.uint8, copy=True)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f'expected an (H, W, 3) RGB image, got shape {arr.shape}')
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(127.5).sub_(1.0).contiguous()
