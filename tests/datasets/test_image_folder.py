"""ImageFolder and ImageNetFolder on foolbox's bundled real CIFAR-10 / ImageNet images."""
import pathlib
import re

import numpy as np
import pytest
import torch
from PIL import Image

from gear.datasets import ImageFolder, ImageNetFolder
from gear.registry import DATASETS

foolbox = pytest.importorskip('foolbox', reason='foolbox ships the real sample images')
DATA = pathlib.Path(foolbox.__file__).parent / 'data'


def _tensor(img):
    return torch.from_numpy(np.array(img.convert('RGB'), np.float32)).permute(2, 0, 1) / 127.5 - 1


def _label(path):
    return int(re.search(r'_(\d+)\.\w+$', path.name).group(1))


# --- ImageFolder --------------------------------------------------------------------------------

def test_cifar10_pngs_labels_and_pixels():
    files = sorted(DATA.glob('cifar10_*.png'))
    ds = DATASETS.build(dict(type='ImageFolder', data_root=str(DATA), resolution=32,
                             pattern='cifar10_*.png'))
    assert len(ds) == len(files) == 20
    for i, f in enumerate(files):
        item = ds[i]
        assert item['label'] == _label(f) and isinstance(item['label'], int)
        assert item['img'].shape == (3, 32, 32)
        assert torch.equal(item['img'], _tensor(Image.open(f)))
    assert ds[0]['label'] == 3  # cifar10_00_3.png


def test_resize_no_labels_num_samples_and_collate():
    ds = ImageFolder(str(DATA), resolution=16, label_from='none', pattern='cifar10_*.png',
                     num_samples=5, classes=['airplane'] * 10)
    assert len(ds) == 5 and ds.metainfo['classes'][0] == 'airplane'
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch['img'].shape == (5, 3, 16, 16) and (batch['label'] == -1).all()
    assert batch['img'].min() >= -1 and batch['img'].max() <= 1
    # a bicubic downsample keeps the picture: compare with a 2x2 mean-pool of the original
    pooled = torch.nn.functional.avg_pool2d(_tensor(Image.open(DATA / 'cifar10_00_3.png'))[None], 2)
    assert (batch['img'][0] - pooled[0]).abs().mean() < 0.1


def test_imagefolder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / 'missing'))):
        ImageFolder(str(tmp_path / 'missing'))
    with pytest.raises(FileNotFoundError, match='no image files') as e:
        ImageFolder(str(tmp_path))
    assert str(tmp_path) in str(e.value)
    (tmp_path / 'photo.png').write_bytes((DATA / 'cifar10_00_3.png').read_bytes())
    with pytest.raises(ValueError, match='photo.png'):
        ImageFolder(str(tmp_path), label_from='filename')
    assert ImageFolder(str(tmp_path), label_from='none')[0]['label'] == -1


def test_corrupt_png_named_at_getitem(tmp_path):
    good = (DATA / 'cifar10_01_8.png').read_bytes()
    (tmp_path / 'a_1.png').write_bytes(good)
    (tmp_path / 'b_2.png').write_bytes(good[:60])  # truncated: header only
    ds = ImageFolder(str(tmp_path))
    assert ds[0]['label'] == 1
    with pytest.raises(OSError, match='cannot read image .*b_2.png'):
        ds[1]


# --- ImageNetFolder -----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    """An ImageNet layout of real JPEGs, plus non-square crops of them saved losslessly."""
    root = tmp_path_factory.mktemp('imagenet')
    jpgs = sorted(DATA.glob('imagenet_*.jpg'))[:4]
    for split in ('train', 'val'):
        for k, f in enumerate(jpgs):
            d = root / split / f'n{_label(f):08d}'
            d.mkdir(parents=True)
            (d / f'{f.stem}.JPEG').symlink_to(f)
            if k == 0:  # a landscape and a portrait crop of the same photo
                with Image.open(f) as im:
                    im.convert('RGB').crop((0, 0, 512, 320)).save(d / 'wide.png')
                    im.convert('RGB').crop((0, 0, 300, 512)).save(d / 'tall.PNG')
                (d / 'notes.txt').write_text('not an image')
    return root, jpgs


def _reference(path, r):
    """Short side bicubic resize with PIL, independently of gear."""
    im = Image.open(path).convert('RGB')
    w, h = im.size
    s = r / min(w, h)
    return im.resize((max(r, round(w * s)), max(r, round(h * s))), Image.BICUBIC)


def test_classes_labels_and_shapes(imagenet):
    root, jpgs = imagenet
    ds = DATASETS.build(dict(type='ImageNetFolder', data_root=str(root), split='val',
                             resolution=64))
    wnids = sorted(f'n{_label(f):08d}' for f in jpgs)
    assert ds.metainfo['classes'] == tuple(wnids)
    assert len(ds) == len(jpgs) + 2  # .txt ignored
    for i, (path, label) in enumerate(ds.samples):
        assert label == wnids.index(pathlib.Path(path).parent.name)
        item = ds[i]
        assert item['label'] == label and item['img'].shape == (3, 64, 64)
        assert item['img'].min() >= -1 and item['img'].max() <= 1
    assert len(ImageNetFolder(str(root), 'val', 64, num_samples=2)) == 2


def test_val_is_deterministic_center_crop(imagenet):
    root, _ = imagenet
    ds = ImageNetFolder(str(root), split='val', resolution=48)
    for i, (path, _) in enumerate(ds.samples):
        torch.manual_seed(0)
        a = ds[i]['img']
        torch.manual_seed(1)
        assert torch.equal(a, ds[i]['img'])
        ref = _reference(path, 48)
        w, h = ref.size
        top, left = round((h - 48) / 2), round((w - 48) / 2)
        assert torch.equal(a, _tensor(ref.crop((left, top, left + 48, top + 48))))


def test_train_crops_vary_with_seed(imagenet):
    root, _ = imagenet
    ds = ImageNetFolder(str(root), split='train', resolution=40, hflip=False)
    for name in ('wide.png', 'tall.PNG'):
        i = next(k for k, (p, _) in enumerate(ds.samples) if p.endswith(name))
        ref = _tensor(_reference(ds.samples[i][0], 40))
        outs = []
        for seed in range(6):
            torch.manual_seed(seed)
            outs.append(ds[i]['img'])
            torch.manual_seed(seed)
            assert torch.equal(outs[-1], ds[i]['img'])  # reproducible from the seed
        assert len({o.sum().item() for o in outs}) > 1  # and varies with it
        windows = ref.unfold(1, 40, 1).unfold(2, 40, 1)  # (3, nh, nw, 40, 40)
        for o in outs:  # every crop is a window of the resized image
            assert (windows == o[:, None, None]).flatten(3).all(-1).all(0).any()


def test_train_hflip(imagenet):
    root, jpgs = imagenet
    ds = ImageNetFolder(str(root), split='train', resolution=32, random_crop=False, hflip=True)
    i = next(k for k, (p, _) in enumerate(ds.samples) if p.endswith('.JPEG'))
    center = _tensor(_reference(ds.samples[i][0], 32))  # square image: the resize is the crop
    flipped = center.flip(-1)
    seen = set()
    for seed in range(16):
        torch.manual_seed(seed)
        out = ds[i]['img']
        if torch.equal(out, center):
            seen.add('plain')
        else:
            assert torch.equal(out, flipped)
            seen.add('flip')
    assert seen == {'plain', 'flip'}
    no_flip = ImageNetFolder(str(root), split='train', resolution=32, random_crop=False,
                             hflip=False)
    assert torch.equal(no_flip[i]['img'], center)


def test_imagenet_errors(imagenet, tmp_path):
    root, _ = imagenet
    with pytest.raises(FileNotFoundError, match='ImageNet layout') as e:
        ImageNetFolder(str(root), split='test')
    assert str(root / 'test') in str(e.value)
    (tmp_path / 'train').mkdir()
    with pytest.raises(FileNotFoundError, match='no class folders'):
        ImageNetFolder(str(tmp_path))
    (tmp_path / 'train' / 'n1').mkdir()
    with pytest.raises(FileNotFoundError, match='no image files'):
        ImageNetFolder(str(tmp_path))
    (tmp_path / 'train' / 'n1' / 'x.JPEG').write_bytes(b'\xff\xd8\xff not really a jpeg')
    with pytest.raises(OSError, match='cannot read image .*x.JPEG'):
        ImageNetFolder(str(tmp_path))[0]
