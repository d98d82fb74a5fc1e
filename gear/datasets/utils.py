"""Listing image files in a folder and finding the empty ones, shared by gear's folder datasets."""
import os
from fnmatch import fnmatch
from typing import Iterable, List, Optional

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


def empty_files(paths: Iterable[str]) -> List[str]:
    """The paths among ``paths`` whose file is empty (0 bytes): one ``stat`` each, no read."""
    return [p for p in paths if os.path.getsize(p) == 0]
