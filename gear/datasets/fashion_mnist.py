"""Fashion-MNIST read from the standard idx files (the Debian package ``dataset-fashion-mnist``).

The four files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (``.gz`` or uncompressed) are
read whole and checked when the dataset is built, before training starts: a file that does not
decompress (truncated, bit rot), a magic number of another data type or number of dimensions
(the idx "mode": Fashion-MNIST is unsigned bytes, images 3-D and 28 x 28, labels 1-D), a size
other than the header's dimensions, image and label counts that differ, or a label outside
0..9 raises ``ValueError`` naming the file. The images are held in memory as one ``uint8``
array (60000 x 28 x 28 is 47 MB). An item starts as
``dict(img=uint8 (28, 28), label=int)`` and goes through the dataset's ``pipeline`` of registered
transforms (default: :func:`fashion_mnist_pipeline`).
"""
import gzip
import os
import zlib
from typing import List, Optional, Sequence, Tuple

import numpy as np
from torch.utils.data import Dataset

from gear.registry import DATASETS

from .pipeline import build_pipeline, check_packed, run_pipeline

CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
           'Bag', 'Ankle boot')
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
_PREFIX = {'train': 'train', 'test': 't10k'}
# The idx data type codes (byte 2 of the magic number); Fashion-MNIST holds unsigned bytes.
_IDX_TYPES = {0x08: 'uint8', 0x09: 'int8', 0x0B: 'int16', 0x0C: 'int32', 0x0D: 'float32',
              0x0E: 'float64'}
_HOW_TO_GET = ("install it with `apt-get install dataset-fashion-mnist` (files land in "
               "/usr/share/datasets/fashion-mnist), or set data_root to a folder holding "
               "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
               "t10k-labels-idx1-ubyte (.gz or uncompressed)")


def find_idx_file(data_root: str, name: str) -> str:
    """Path of ``name.gz`` or ``name`` in ``data_root``; ``FileNotFoundError`` if neither exists."""
    if not os.path.isdir(data_root):
        raise FileNotFoundError(f'Fashion-MNIST data_root {data_root!r} does not exist; '
                                f'{_HOW_TO_GET}')
    for candidate in (name + '.gz', name):
        path = os.path.join(data_root, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f'Fashion-MNIST file {os.path.join(data_root, name)}[.gz] not found; '
                            f'{_HOW_TO_GET}')


def _describe(magic: int) -> str:
    """The idx magic number's meaning: bytes 0-1 zero, byte 2 the data type, byte 3 the number of
    dimensions (Fashion-MNIST: type 0x08, unsigned bytes; images 3-D, labels 1-D)."""
    if magic >> 16:
        return 'not an idx header: its first two bytes are not zero'
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    return f'{_IDX_TYPES.get(code, f"unknown type 0x{code:02x}")}, {ndim}-D'


def read_idx(path: str, magic: int, ndim: int) -> np.ndarray:
    """Parse an idx file of unsigned bytes; ``ValueError`` naming ``path`` when it is corrupt."""
    try:
        opener = gzip.open if path.endswith('.gz') else open
        with opener(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f'corrupt idx file {path}: cannot decompress/read it ({e})') from e
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f'corrupt idx file {path}: {len(data)} bytes, shorter than its '
                         f'{header}-byte header')
    found = int.from_bytes(data[:4], 'big')
    if found != magic:
        raise ValueError(f'corrupt idx file {path}: magic number {found} ({_describe(found)}), '
                         f'expected {magic} ({_describe(magic)}: '
                         f'{"images" if magic == IMAGES_MAGIC else "labels"})')
    dims = tuple(int(d) for d in np.frombuffer(data, dtype='>u4', count=ndim, offset=4))
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise ValueError(f'corrupt idx file {path}: dimensions {dims} need {expected} bytes of '
                         f'data, found {len(data) - header} (truncated or padded)')
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_fashion_mnist(data_root: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 28, 28), labels uint8 (N,))`` of ``split`` ('train' or 'test')."""
    prefix = _PREFIX[split]
    img_path = find_idx_file(data_root, f'{prefix}-images-idx3-ubyte')
    lbl_path = find_idx_file(data_root, f'{prefix}-labels-idx1-ubyte')
    images = read_idx(img_path, IMAGES_MAGIC, 3)
    labels = read_idx(lbl_path, LABELS_MAGIC, 1)
    if images.shape[1:] != (28, 28):
        raise ValueError(f'corrupt idx file {img_path}: images are {images.shape[1:]}, '
                         'expected 28x28')
    if len(images) != len(labels):
        raise ValueError(f'Fashion-MNIST {split}: {img_path} holds {len(images)} images but '
                         f'{lbl_path} holds {len(labels)} labels')
    if labels.size and labels.max() >= len(CLASSES):
        raise ValueError(f'corrupt idx file {lbl_path}: label {labels.max()} out of range 0..9')
    return images, labels


def fashion_mnist_pipeline(resolution: int) -> List[dict]:
    """The 28 px -> ``resolution`` steps as transform configs (sizes: the dataset's resolution).

    32: ``CenterPad`` (2 px of background on every side, exact); 28: nothing; any other size:
    ``TorchResize`` (antialiased bicubic on the ``[-1, 1]`` values, clamped). Then
    ``PackGearInputs`` repeats the grey channel to three.

    Args:
        resolution: side of the square output image.
    """
    if resolution == 32:
        steps = [dict(type='CenterPad', pad_val=0)]
    elif resolution == 28:
        steps = []
    else:
        steps = [dict(type='TorchResize', mode='bicubic', antialias=True)]
    return steps + [dict(type='PackGearInputs', num_channels=3)]


@DATASETS.register_module()
class FashionMNIST(Dataset):
    """Fashion-MNIST (10 classes of 28x28 grey clothing images) as 3-channel ``[-1, 1]`` tensors.

    Items are ``dict(img=FloatTensor (3, R, R), label=int)``. The grey value is repeated over
    the three channels. Without ``pipeline``, at ``resolution=32`` (the default) the 28x28 image
    is padded with 2 pixels of background (-1) on every side, so the pixels stay exact; at 28 it
    is left as is; at any other resolution the 28x28 image is resized with antialiased bicubic
    interpolation (``F.interpolate(mode='bicubic', antialias=True)`` on the ``[-1, 1]`` values,
    then clamped).

    Args:
        data_root: folder with the four idx files, ``.gz`` or uncompressed (default: where the
            Debian package ``dataset-fashion-mnist`` installs them).
        split: ``'train'`` (60000 images) or ``'test'`` (10000 images).
        resolution: side ``R`` of the square output image; fills the size of the pipeline's
            sized transforms that leave it out.
        num_samples: use only the first ``num_samples`` items (all when ``None`` or larger than the
            split).
        pipeline: transform configs applied to ``dict(img=uint8 (28, 28), label, sample_idx)``,
            ending in ``PackGearInputs`` (default: :func:`fashion_mnist_pipeline`).
    """

    def __init__(self, data_root: str = '/usr/share/datasets/fashion-mnist', split: str = 'train',
                 resolution: int = 32, num_samples: Optional[int] = None,
                 pipeline: Optional[Sequence[dict]] = None):
        if split not in _PREFIX:
            raise ValueError(f"FashionMNIST split must be 'train' or 'test', got {split!r}")
        if int(resolution) < 1:
            raise ValueError(f'resolution must be positive, got {resolution}')
        if num_samples is not None and int(num_samples) < 0:
            raise ValueError(f'num_samples must be >= 0 or None, got {num_samples}')
        self.data_root, self.split, self.resolution = data_root, split, int(resolution)
        images, labels = load_fashion_mnist(data_root, split)
        if num_samples is not None:
            images, labels = images[:int(num_samples)], labels[:int(num_samples)]
        self.images = np.ascontiguousarray(images)
        self.labels = np.ascontiguousarray(labels)
        self.metainfo = dict(classes=CLASSES, dataset_name='Fashion-MNIST')
        if pipeline is None:
            pipeline = fashion_mnist_pipeline(self.resolution)
        self.pipeline = build_pipeline(pipeline, self.resolution, 'FashionMNIST')

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int) -> dict:
        if not -len(self) <= idx < len(self):
            raise IndexError(f'index {idx} out of range for FashionMNIST of length {len(self)}')
        what = f'FashionMNIST {self.split} item {idx}'
        # img: uint8 (28, 28)
        results = dict(img=self.images[idx], label=int(self.labels[idx]), sample_idx=idx)
        return check_packed(run_pipeline(self.pipeline, results, what), self.resolution, what)
