"""Datasets read from disk: Fashion-MNIST idx files, ImageNet-layout folders, plain image folders.

Importing this package registers every dataset in ``gear.registry.DATASETS``.
"""
from .fashion_mnist import FashionMNIST
from .image_folder import ImageFolder, ImageNetFolder

__all__ = ['FashionMNIST', 'ImageFolder', 'ImageNetFolder']
