"""Datasets read from disk: Fashion-MNIST idx files, ImageNet-layout folders, plain image folders.

Each dataset feeds its samples through a ``pipeline`` of registered transforms
(:mod:`gear.datasets.transforms`, on ``mmcv.transforms``; see docs/data.md). Importing this
package registers every dataset in ``gear.registry.DATASETS`` and every transform in
``gear.registry.TRANSFORMS``.
"""
from .fashion_mnist import FashionMNIST
from .image_folder import ImageFolder, ImageNetFolder
from .pipeline import build_pipeline

__all__ = ['FashionMNIST', 'ImageFolder', 'ImageNetFolder', 'build_pipeline']
