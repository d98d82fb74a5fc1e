"""Datasets read from disk: Fashion-MNIST idx files, ImageNet-layout folders, plain image folders,
image-caption pairs in WebDataset tar shards (``CaptionShards``), and pre-extracted codes
(``CodesDataset``, docs/codes.md).

Each dataset feeds its samples through a ``pipeline`` of registered transforms
(:mod:`gear.datasets.transforms`, on ``mmcv.transforms``; see docs/data.md). Importing this
package registers every dataset in ``gear.registry.DATASETS`` and every transform in
``gear.registry.TRANSFORMS``.
"""
from .caption_shards import CaptionShards
from .codes import CodesDataset
from .fashion_mnist import FashionMNIST
from .image_folder import ImageFolder, ImageNetFolder
from .pipeline import build_pipeline

__all__ = ['CaptionShards', 'CodesDataset', 'FashionMNIST', 'ImageFolder', 'ImageNetFolder',
           'build_pipeline']
