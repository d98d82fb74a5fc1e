"""The teacher feature cache: same features as the network, read back instead of recomputed,
kept apart per teacher weights / input size / precision, and never silently wrong on bad files.

Real data (Fashion-MNIST test images) through the real EfficientNet-Lite0 teacher at 64 px.
"""
import os
import pathlib

import pytest
import torch

from gear.datasets import FashionMNIST
from gear.models.align import EfficientNetLite0Teacher
from gear.models.prior import build_teachers

ROOT = '/usr/share/datasets/fashion-mnist'


@pytest.fixture(scope='module')
def images():
    data = FashionMNIST(ROOT, split='test', resolution=32, num_samples=6)
    return torch.stack([data[i]['img'] for i in range(6)])  # (6, 3, 32, 32)


@pytest.fixture(scope='module')
def plain():
    return EfficientNetLite0Teacher(grid_size=4, image_size=64)


def _cached(tmp_path, **kwargs):
    teacher = EfficientNetLite0Teacher(grid_size=4, image_size=64, **kwargs)
    return teacher.use_cache(str(tmp_path / 'cache'))


def _count_extract(teacher):
    """Wrap ``teacher.extract`` to count the images it computes."""
    calls = []
    extract = teacher.extract
    teacher.extract = lambda x: (calls.append(x.shape[0]), extract(x))[1]
    return calls


def test_cached_features_equal_the_network_and_are_read_back(tmp_path, images, plain):
    teacher = _cached(tmp_path)
    calls = _count_extract(teacher)
    with torch.no_grad():
        ref = plain(images)  # (6, 16, 1280)
        first = teacher(images[:4])  # computes 4
        second = teacher(images)  # reads 4, computes 2 (one batch)
        third = teacher(images.flip(0))  # reads all 6, in the asked order
    assert calls == [4, 2]
    assert (teacher.feature_cache.hits, teacher.feature_cache.misses) == (10, 6)
    torch.testing.assert_close(first, ref[:4], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(second, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(third, second.flip(0))
    entries = list(pathlib.Path(tmp_path / 'cache').rglob('*.npy'))
    assert len(entries) == 6  # one per distinct image

    # another run (a fresh teacher object) reads the same entries: nothing computed
    again = _cached(tmp_path)
    calls = _count_extract(again)
    with torch.no_grad():
        assert torch.equal(again(images), second)
    assert calls == []


def test_other_weights_size_or_precision_never_read_each_others_maps(tmp_path, images):
    base = _cached(tmp_path)
    with torch.no_grad():
        base(images[:2])
        other_size = EfficientNetLite0Teacher(grid_size=4, image_size=96).use_cache(
            str(tmp_path / 'cache'))
        other_weights = _cached(tmp_path)
        other_weights.model.conv_stem.weight.add_(1e-3)
        for teacher in (other_size, other_weights):
            calls = _count_extract(teacher)
            teacher(images[:2])
            assert calls == [2]
        with torch.autocast('cpu', dtype=torch.bfloat16):
            amp = _cached(tmp_path)
            calls = _count_extract(amp)
            first = amp(images[:2])
            second = amp(images[:2])
    assert calls == [2]  # the bf16 maps are their own entries, read back exactly
    assert torch.equal(first, second) and first.dtype == second.dtype
    namespaces = [p for p in (tmp_path / 'cache').iterdir() if p.is_dir()]
    assert len(namespaces) == 4


def test_an_input_with_gradient_bypasses_the_cache(tmp_path, images):
    teacher = _cached(tmp_path)
    x = images[:2].clone().requires_grad_(True)
    teacher(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert teacher.feature_cache.misses == 0 and not (tmp_path / 'cache').exists()


def test_a_corrupt_entry_is_an_error_naming_the_file(tmp_path, images):
    teacher = _cached(tmp_path)
    with torch.no_grad():
        teacher(images[:2])
    entry = sorted(pathlib.Path(tmp_path / 'cache').rglob('*.npy'))[0]
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    with pytest.raises(RuntimeError, match=str(entry)), torch.no_grad():
        _cached(tmp_path)(images[:2])

    import numpy as np
    np.save(entry, np.zeros((3, 2, 2), np.float32))  # readable, wrong shape
    with pytest.raises(RuntimeError, match=r'expected float32 \[1280, 2, 2\]'), torch.no_grad():
        _cached(tmp_path)(images[:2])


def test_an_unwritable_cache_warns_and_trains_on(tmp_path, images, plain):
    blocker = tmp_path / 'file'
    blocker.write_text('not a directory')
    teacher = EfficientNetLite0Teacher(grid_size=4, image_size=64).use_cache(str(blocker))
    with torch.no_grad():
        out = teacher(images[:2])
        torch.testing.assert_close(out, plain(images[:2]), rtol=1e-5, atol=1e-5)
    assert teacher.feature_cache.writer.failed
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')]


def test_build_teachers_takes_cache_dir_from_the_config(tmp_path):
    teachers = build_teachers(dict(effnet=dict(type='EfficientNetLite0Teacher', grid_size=4,
                                               image_size=64, cache_dir=str(tmp_path))))
    assert teachers['effnet'].feature_cache.root == str(tmp_path)
    assert build_teachers(dict(effnet=dict(type='EfficientNetLite0Teacher', grid_size=4,
                                           image_size=64)))['effnet'].feature_cache is None
