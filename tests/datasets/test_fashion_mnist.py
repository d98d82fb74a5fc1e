"""FashionMNIST on the real idx files of the Debian package ``dataset-fashion-mnist``."""
import gzip
import os
import struct

import numpy as np
import pytest
import torch

from gear.datasets import FashionMNIST
from gear.datasets.fashion_mnist import CLASSES
from gear.registry import DATASETS

ROOT = '/usr/share/datasets/fashion-mnist'
needs_data = pytest.mark.skipif(
    not os.path.isdir(ROOT),
    reason=f'{ROOT} missing: install it with `apt-get install dataset-fashion-mnist`')


def _raw(split):
    """Images and labels parsed independently of gear (gzip + numpy)."""
    prefix = 'train' if split == 'train' else 't10k'
    with gzip.open(f'{ROOT}/{prefix}-images-idx3-ubyte.gz', 'rb') as f:
        img = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f'{ROOT}/{prefix}-labels-idx1-ubyte.gz', 'rb') as f:
        lbl = np.frombuffer(f.read(), np.uint8, offset=8)
    return img, lbl


@pytest.fixture(scope='module')
def train():
    return FashionMNIST(ROOT, split='train', resolution=32)


@pytest.fixture(scope='module')
def raw_train():
    return _raw('train')


@needs_data
def test_lengths_and_metainfo(train):
    assert len(train) == 60000
    assert len(FashionMNIST(ROOT, split='test')) == 10000
    assert train.metainfo['classes'] == CLASSES and len(CLASSES) == 10


@needs_data
@pytest.mark.parametrize('idx', [0, 1, 12345, 59999])
def test_item_pixels_exact_at_32(train, raw_train, idx):
    item = train[idx]
    img, label = item['img'], item['label']
    assert isinstance(label, int) and label == int(raw_train[1][idx])
    assert img.dtype == torch.float32 and img.shape == (3, 32, 32)
    assert img.min() >= -1 and img.max() <= 1
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (img[:, border] == -1).all()
    expected = torch.from_numpy(raw_train[0][idx].astype(np.float32)) / 127.5 - 1
    for c in range(3):
        assert torch.equal(img[c, 2:30, 2:30], expected)


@needs_data
def test_first_label_and_label_range(train, raw_train):
    assert train[0]['label'] == int(raw_train[1][0])  # 9 ('Ankle boot') in the official files
    labels = set(train.labels.tolist())
    assert labels == set(range(10))


@needs_data
def test_other_resolutions_and_num_samples():
    ds = DATASETS.build(dict(type='FashionMNIST', data_root=ROOT, split='test', resolution=64,
                             num_samples=7))
    assert len(ds) == 7
    img = ds[3]['img']
    assert img.shape == (3, 64, 64) and img.min() >= -1 and img.max() <= 1
    assert torch.equal(img[0], img[1]) and torch.equal(img[0], img[2])
    raw_img, raw_lbl = _raw('test')
    assert [ds[i]['label'] for i in range(7)] == raw_lbl[:7].tolist()
    small = FashionMNIST(ROOT, split='test', resolution=28, num_samples=2)[1]['img']
    assert torch.equal(small[0], torch.from_numpy(raw_img[1].astype(np.float32)) / 127.5 - 1)
    # the upsampled image keeps the picture: its 2x mean-pool is close to the raw image
    pooled = torch.nn.functional.avg_pool2d(
        FashionMNIST(ROOT, split='test', resolution=56, num_samples=4)[3]['img'][None], 2)[0, 0]
    raw = torch.from_numpy(raw_img[3].astype(np.float32)) / 127.5 - 1
    assert (pooled - raw).abs().mean() < 0.05


@needs_data
def test_dataloader_collates(train):
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=4)))
    assert batch['img'].shape == (4, 3, 32, 32) and batch['label'].dtype == torch.int64


# --- errors, on files written to tmp_path ------------------------------------------------------

def _idx(magic, dims, payload):
    return struct.pack('>' + 'I' * (1 + len(dims)), magic, *dims) + bytes(payload)


def _write(root, prefix='train', n_img=3, n_lbl=3, img_magic=2051, lbl_magic=2049, gz=True,
           cut=0):
    root.mkdir(exist_ok=True)
    images = _idx(img_magic, (n_img, 28, 28), (np.arange(n_img * 784) % 256).astype(np.uint8))
    labels = _idx(lbl_magic, (n_lbl,), (np.arange(n_lbl) % 10).astype(np.uint8))
    for name, data in ((f'{prefix}-images-idx3-ubyte', images[:len(images) - cut]),
                       (f'{prefix}-labels-idx1-ubyte', labels)):
        if gz:
            with gzip.open(root / (name + '.gz'), 'wb') as f:
                f.write(data)
        else:
            (root / name).write_bytes(data)


def test_missing_root_names_path_and_package(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError, match='dataset-fashion-mnist') as e:
        FashionMNIST(str(missing))
    assert str(missing) in str(e.value)


def test_missing_file_names_it(tmp_path):
    _write(tmp_path, prefix='train')
    with pytest.raises(FileNotFoundError, match='t10k-images-idx3-ubyte') as e:
        FashionMNIST(str(tmp_path), split='test')
    assert str(tmp_path) in str(e.value) and 'dataset-fashion-mnist' in str(e.value)


@pytest.mark.parametrize('gz', [True, False])
def test_valid_small_files_gz_and_plain(tmp_path, gz):
    _write(tmp_path, n_img=3, n_lbl=3, gz=gz)
    ds = FashionMNIST(str(tmp_path), split='train')
    assert len(ds) == 3 and [ds[i]['label'] for i in range(3)] == [0, 1, 2]
    assert ds[1]['img'][0, 2, 2] == (784 % 256) / 127.5 - 1


@pytest.mark.parametrize('gz', [True, False])
def test_bad_magic(tmp_path, gz):
    _write(tmp_path, img_magic=2049, gz=gz)
    with pytest.raises(ValueError, match=r'magic number 2049 \(uint8, 1-D\), expected 2051') as e:
        FashionMNIST(str(tmp_path))
    assert 'train-images-idx3-ubyte' in str(e.value)


def test_truncated_data(tmp_path):
    _write(tmp_path, cut=100)
    with pytest.raises(ValueError, match='truncated') as e:
        FashionMNIST(str(tmp_path))
    assert str(tmp_path / 'train-images-idx3-ubyte.gz') in str(e.value)


def test_truncated_gzip_stream(tmp_path):
    _write(tmp_path)
    path = tmp_path / 'train-labels-idx1-ubyte.gz'
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match='corrupt idx file') as e:
        FashionMNIST(str(tmp_path))
    assert str(path) in str(e.value)


def test_count_mismatch(tmp_path):
    _write(tmp_path, n_img=5, n_lbl=4)
    with pytest.raises(ValueError, match='5 images but') as e:
        FashionMNIST(str(tmp_path))
    assert 'train-labels-idx1-ubyte' in str(e.value) and '4 labels' in str(e.value)


def test_bad_split():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        FashionMNIST(ROOT, split='val')


# --- corrupt copies of the real files: each an error naming the file, when the dataset is built --

REAL = {'images': 't10k-images-idx3-ubyte.gz', 'labels': 't10k-labels-idx1-ubyte.gz'}


def _real_copy(tmp_path, which, edit, decompress=False):
    """A test-split folder holding the real files, ``which`` of them rewritten by ``edit``
    (bytes -> bytes) and the other linked to the original; returns the rewritten file. With
    ``decompress``, ``edit`` gets the idx bytes and the file is written uncompressed (the
    dataset reads both forms)."""
    for name in REAL.values():
        (tmp_path / name).symlink_to(os.path.join(ROOT, name))
    path = tmp_path / REAL[which]
    data = path.read_bytes()
    path.unlink()
    if decompress:
        path = path.with_suffix('')  # t10k-...-ubyte
        data = gzip.decompress(data)
    path.write_bytes(edit(data))
    return path


@needs_data
@pytest.mark.parametrize('cut', [10, 1_000_000, -4], ids=['gzip-header', 'middle', 'crc-trailer'])
def test_truncated_real_gz_names_the_file(tmp_path, cut):
    path = _real_copy(tmp_path, 'images', lambda data: data[:cut])
    with pytest.raises(ValueError, match='cannot decompress/read it') as e:
        FashionMNIST(str(tmp_path), split='test')
    assert f'corrupt idx file {path}' in str(e.value)


@needs_data
def test_bit_rot_in_real_gz_names_the_file(tmp_path):
    def flip(data):
        k = len(data) // 2
        return data[:k] + bytes([data[k] ^ 0xFF]) + data[k + 1:]

    path = _real_copy(tmp_path, 'images', flip)
    with pytest.raises(ValueError, match='cannot decompress/read it') as e:
        FashionMNIST(str(tmp_path), split='test')
    assert f'corrupt idx file {path}' in str(e.value)


@needs_data
@pytest.mark.parametrize('which,count,found', [('images', 10001, '7840000'),
                                               ('labels', 9999, '10000')])
def test_header_count_not_the_data_names_the_file(tmp_path, which, count, found):
    """A header that promises one item more (images) or fewer (labels) than the file holds."""
    path = _real_copy(tmp_path, which, lambda raw: raw[:4] + struct.pack('>I', count) + raw[8:],
                      decompress=True)
    with pytest.raises(ValueError, match='truncated or padded') as e:
        FashionMNIST(str(tmp_path), split='test')
    assert f'corrupt idx file {path}' in str(e.value) and f'found {found}' in str(e.value)


@needs_data
def test_fewer_labels_than_images_names_both_files(tmp_path):
    path = _real_copy(tmp_path, 'labels', lambda raw: struct.pack('>II', 2049, 9999)
                      + raw[8:8 + 9999], decompress=True)
    with pytest.raises(ValueError, match='holds 10000 images but') as e:
        FashionMNIST(str(tmp_path), split='test')
    assert str(path) in str(e.value) and str(tmp_path / REAL['images']) in str(e.value)


@needs_data
@pytest.mark.parametrize('magic,mode', [(0x00000D03, 'float32, 3-D'), (0x00000804, 'uint8, 4-D'),
                                        (0x1F8B0803, 'not an idx header: its first two bytes '
                                                     'are not zero')])
def test_images_of_another_mode_name_the_file_and_mode(tmp_path, magic, mode):
    """Fashion-MNIST's "wrong mode": an idx file of another data type or number of dimensions
    (float32 pixels, an extra channel axis), or no idx header at all (a file gzipped twice)."""
    path = _real_copy(tmp_path, 'images', lambda raw: struct.pack('>I', magic) + raw[4:],
                      decompress=True)
    with pytest.raises(ValueError, match=f'magic number {magic} \\({mode}\\), expected 2051 '
                                         r'\(uint8, 3-D: images\)') as e:
        FashionMNIST(str(tmp_path), split='test')
    assert f'corrupt idx file {path}' in str(e.value)


@needs_data
def test_labels_out_of_range_name_the_file(tmp_path):
    path = _real_copy(tmp_path, 'labels', lambda raw: raw[:-1] + bytes([10]), decompress=True)
    with pytest.raises(ValueError, match='label 10 out of range 0..9') as e:
        FashionMNIST(str(tmp_path), split='test')
    assert str(path) in str(e.value)
