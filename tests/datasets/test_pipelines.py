"""The mmcv-based pipelines give the same pixels and the same random draws as gear's datasets did
before them (the hand-written ``gear/datasets/transforms.py`` of commit 3c4e6f9, copied below as
the oracle), and bad pipelines fail naming the key, the value or the file."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from PIL import Image

from gear.datasets import FashionMNIST, ImageFolder, ImageNetFolder
from gear.datasets.pipeline import build_pipeline
from gear.engine.config_check import ConfigError, check_config
from gear.registry import DATASETS, TRANSFORMS

from ..conftest import FASHION_MNIST, REPO

IMAGENET_CFG = osp.join(REPO, 'configs', '_base_', 'datasets', 'imagenet.py')
FASHION_CFG = osp.join(REPO, 'configs', '_base_', 'datasets', 'fashion_mnist.py')


# --- the oracle: today's code, copied verbatim from gear/datasets/transforms.py (3c4e6f9) -----

def load_rgb(path):
    with Image.open(path) as img:
        return img.convert('RGB')


def resize_short_side(img, size):
    w, h = img.size
    if min(w, h) == size:
        return img
    scale = size / min(w, h)
    new_w = size if w <= h else max(size, round(w * scale))
    new_h = size if h <= w else max(size, round(h * scale))
    return img.resize((new_w, new_h), Image.BICUBIC)


def crop_box(img, top, left, size):
    return img.crop((left, top, left + size, top + size))


def center_crop(img, size):
    w, h = img.size
    return crop_box(img, int(round((h - size) / 2.0)), int(round((w - size) / 2.0)), size)


def random_crop(img, size):
    w, h = img.size
    top = int(torch.randint(0, h - size + 1, (1,)).item())
    left = int(torch.randint(0, w - size + 1, (1,)).item())
    return crop_box(img, top, left, size)


def random_hflip(img, p=0.5):
    if torch.rand(1).item() < p:
        return img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def to_tensor(img):
    arr = np.array(img, dtype=np.uint8, copy=True)
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(127.5).sub_(1.0).contiguous()


def imagenet_item(path, label, r, train, random_crop_=True, hflip=True):
    """``ImageNetFolder.__getitem__`` of 3c4e6f9."""
    img = resize_short_side(load_rgb(path), r)
    img = random_crop(img, r) if train and random_crop_ else center_crop(img, r)
    if train and hflip:
        img = random_hflip(img, 0.5)
    return dict(img=to_tensor(img), label=label)


def fashion_item(images, labels, idx, r):
    """``FashionMNIST.__getitem__`` of 3c4e6f9."""
    img = torch.from_numpy(images[idx].astype(np.float32)).div_(127.5).sub_(1.0)[None]
    if r == 32:
        img = F.pad(img, (2, 2, 2, 2), value=-1.0)
    elif r != 28:
        img = F.interpolate(img[None], size=(r, r), mode='bicubic', align_corners=False,
                            antialias=True)[0].clamp_(-1.0, 1.0)
    return dict(img=img.expand(3, r, r).contiguous(), label=int(labels[idx]))


# --- real image files of odd sizes and modes, written here --------------------------------------

def _picture(w, h, seed):
    """Smooth gradients plus noise: edges and texture for the resize filters to differ on."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h) + 64], -1)
    return np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)


def _write_images(folder, seed):
    folder.mkdir(parents=True)
    pic = lambda w, h, k: Image.fromarray(_picture(w, h, seed * 10 + k))  # noqa: E731
    pic(53, 37, 0).save(folder / 'a_wide.png')
    pic(41, 64, 1).save(folder / 'b_tall.JPEG', quality=90)
    pic(50, 50, 2).convert('L').save(folder / 'c_grey.png')
    rgba = pic(33, 97, 3).convert('RGBA')
    rgba.putalpha(Image.fromarray(_picture(33, 97, 9)[..., 0]))
    rgba.save(folder / 'd_rgba.png')
    la = pic(45, 31, 4).convert('LA')  # mmcv's loader would composite this on grey
    la.putalpha(Image.fromarray(_picture(45, 31, 8)[..., 1]))
    la.save(folder / 'e_la.png')
    pic(39, 44, 5).convert('P').save(folder / 'f_palette.png')
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation "rotate 90": ignored, as PIL's plain convert ignores it
    pic(60, 47, 6).save(folder / 'g_exif.jpg', exif=exif.tobytes())
    pic(24, 40, 7).save(folder / 'h_exact.bmp')  # short side == 24: no resize at 24 px


@pytest.fixture(scope='module')
def imagenet_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp('imagenet_pipeline')
    for split in ('train', 'val'):
        for k, wnid in enumerate(('n01440764', 'n01443537')):
            _write_images(root / split / wnid, seed=k + (10 if split == 'val' else 0))
    return root


def _config_dataset(cfg_path, split_key, **cfg_options):
    cfg = Config.fromfile(cfg_path)
    cfg.merge_from_dict(cfg_options)
    return DATASETS.build(cfg[split_key]['dataset'])


# --- ImageNet: the reference augmentation --------------------------------------------------------

@pytest.mark.parametrize('resolution', [24, 36])
def test_config_train_pipeline_same_pixels_and_draws_as_before(imagenet_tree, resolution):
    ds = _config_dataset(IMAGENET_CFG, 'train_dataloader', **{
        'train_dataloader.dataset.data_root': str(imagenet_tree),
        'train_dataloader.dataset.resolution': resolution})
    assert [type(t).__name__ for t in ds.pipeline.transforms] == [
        'LoadRGBImage', 'ResizeShortSide', 'RandomCrop', 'RandomHFlip', 'PackGearInputs']
    assert len(ds) == 16
    flips = set()
    for i, (path, label) in enumerate(ds.samples):
        for seed in (0, 1, 2, 7):
            torch.manual_seed(seed)
            got = ds[i]
            after = torch.rand(1)  # the RNG advanced by exactly the same draws
            torch.manual_seed(seed)
            want = imagenet_item(path, label, resolution, train=True)
            assert torch.equal(torch.rand(1), after), path
            assert got['label'] == want['label'] and isinstance(got['label'], int)
            assert got['img'].dtype == torch.float32 and got['img'].is_contiguous()
            assert torch.equal(got['img'], want['img']), (path, seed)
            torch.manual_seed(seed)
            torch.randint(0, 2, (1,)), torch.randint(0, 2, (1,))
            flips.add(torch.rand(1).item() < 0.5)
    assert flips == {True, False}  # both branches of the flip were compared


@pytest.mark.parametrize('resolution', [24, 36])
def test_config_val_pipeline_same_pixels_as_before(imagenet_tree, resolution):
    ds = _config_dataset(IMAGENET_CFG, 'val_dataloader', **{
        'val_dataloader.dataset.data_root': str(imagenet_tree),
        'val_dataloader.dataset.resolution': resolution})
    for i, (path, label) in enumerate(ds.samples):
        torch.manual_seed(i)
        got = ds[i]
        after = torch.rand(1)
        torch.manual_seed(i)
        assert torch.equal(got['img'], imagenet_item(path, label, resolution, train=False)['img'])
        assert torch.equal(torch.rand(1), after)  # no draws at all


def test_val_pixels_computed_with_pil_alone(imagenet_tree):
    """Independently of the oracle: PIL bicubic short side, centre window, /127.5 - 1."""
    ds = ImageNetFolder(str(imagenet_tree), split='val', resolution=20)
    path = next(p for p, _ in ds.samples if p.endswith('a_wide.png'))  # 53x37 -> 29x20
    with Image.open(path) as im:
        ref = np.asarray(im.convert('RGB').resize((29, 20), Image.BICUBIC))[:, 4:24]
    want = torch.from_numpy(ref.astype(np.float32)).permute(2, 0, 1) / 127.5 - 1
    assert torch.equal(ds[ds.samples.index((path, 0))]['img'], want)


@pytest.mark.parametrize('random_crop,hflip', [(True, True), (False, True), (True, False)])
def test_default_pipeline_flags_match_before(imagenet_tree, random_crop, hflip):
    ds = ImageNetFolder(str(imagenet_tree), 'train', 24, random_crop=random_crop, hflip=hflip)
    for i, (path, label) in enumerate(ds.samples[:8]):
        torch.manual_seed(i)
        got = ds[i]['img']
        torch.manual_seed(i)
        assert torch.equal(got, imagenet_item(path, label, 24, True, random_crop, hflip)['img'])


def test_dataloader_workers_draw_as_before(imagenet_tree):
    """Two workers, seeded by the DataLoader per worker: the same batches as the old dataset."""
    class Before(torch.utils.data.Dataset):
        def __init__(self, samples):
            self.samples = samples

        def __len__(self):
            return len(self.samples)

        def __getitem__(self, i):
            return imagenet_item(*self.samples[i], 24, train=True)

    new = ImageNetFolder(str(imagenet_tree), 'train', 24)
    batches = []
    for ds in (new, Before(new.samples)):
        loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, num_workers=2,
                                             generator=torch.Generator().manual_seed(3))
        batches.append(list(loader))
    for a, b in zip(*batches):
        assert torch.equal(a['img'], b['img']) and torch.equal(a['label'], b['label'])


def test_image_folder_default_pipeline_matches_before(imagenet_tree):
    folder = imagenet_tree / 'val' / 'n01440764'
    ds = ImageFolder(str(folder), resolution=28, label_from='none')
    for i, (path, _) in enumerate(ds.samples):
        assert torch.equal(ds[i]['img'], imagenet_item(path, -1, 28, train=False)['img'])


def test_resolution_override_sizes_every_step(imagenet_tree):
    ds = _config_dataset(IMAGENET_CFG, 'train_dataloader', **{
        'train_dataloader.dataset.data_root': str(imagenet_tree),
        'train_dataloader.dataset.resolution': 16})
    assert [getattr(t, 'size', None) for t in ds.pipeline.transforms[1:3]] == [16, 16]
    assert ds[0]['img'].shape == (3, 16, 16)


# --- Fashion-MNIST ---------------------------------------------------------------------------

needs_fashion = pytest.mark.skipif(not osp.isdir(FASHION_MNIST),
                                   reason=f'{FASHION_MNIST} missing: apt-get install '
                                          'dataset-fashion-mnist')


@needs_fashion
@pytest.mark.parametrize('split_key', ['train_dataloader', 'val_dataloader'])
def test_fashion_config_pipeline_first_items_as_before(split_key):
    ds = _config_dataset(FASHION_CFG, split_key)
    for i in range(64):
        got, want = ds[i], fashion_item(ds.images, ds.labels, i, 32)
        assert got['label'] == want['label'] and torch.equal(got['img'], want['img'])
        assert got['img'].is_contiguous() and got['img'].dtype == torch.float32


@needs_fashion
@pytest.mark.parametrize('resolution', [28, 16, 56, 30])
def test_fashion_default_pipeline_other_resolutions_as_before(resolution):
    ds = FashionMNIST(FASHION_MNIST, split='test', resolution=resolution, num_samples=32)
    for i in range(32):
        assert torch.equal(ds[i]['img'], fashion_item(ds.images, ds.labels, i, resolution)['img'])
    explicit = FashionMNIST(FASHION_MNIST, split='test', resolution=resolution, num_samples=4,
                            pipeline=[dict(type='TorchResize'), dict(type='PackGearInputs')])
    if resolution != 28:  # TorchResize to 28 would resample 28 -> 28: skip that one
        assert torch.equal(explicit[3]['img'], ds[3]['img'])


@needs_fashion
def test_fashion_seeded_random_flip():
    """A random step in the Fashion pipeline draws from torch: seeded, it is the old tensor
    mirrored exactly when ``torch.rand(1) < prob``."""
    ds = FashionMNIST(FASHION_MNIST, split='train', num_samples=40, pipeline=[
        dict(type='CenterPad'), dict(type='RandomHFlip', prob=0.5), dict(type='PackGearInputs')])
    seen = set()
    for i in range(40):
        torch.manual_seed(100 + i)
        got = ds[i]['img']
        torch.manual_seed(100 + i)
        flip = torch.rand(1).item() < 0.5
        want = fashion_item(ds.images, ds.labels, i, 32)['img']
        assert torch.equal(got, want.flip(-1) if flip else want)
        seen.add(flip)
    assert seen == {True, False}


# --- the registry and errors -------------------------------------------------------------------

def test_mmcv_transforms_resolve_through_gears_registry():
    import mmcv.transforms
    assert TRANSFORMS.get('CenterCrop') is mmcv.transforms.CenterCrop
    assert TRANSFORMS.get('RandomCrop').__module__ == 'gear.datasets.transforms.augment'
    pipe = build_pipeline([dict(type='CenterCrop', crop_size=3), dict(type='PackGearInputs')],
                          None, 'test')
    out = pipe(dict(img=np.arange(75, dtype=np.uint8).reshape(5, 5, 3), label=4))
    assert out['img'].shape == (3, 3, 3) and out['label'] == 4


def test_unknown_transform_type_names_the_key(imagenet_tree):
    with pytest.raises(ValueError, match=r"ImageNetFolder\.pipeline\[2\]\.type: 'RandomCorp' "
                                         r"is not a registered transform.*'RandomCrop'"):
        ImageNetFolder(str(imagenet_tree), pipeline=[
            dict(type='LoadRGBImage'), dict(type='ResizeShortSide'), dict(type='RandomCorp'),
            dict(type='PackGearInputs')])
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'tokenizer', 'tokenizer_vq16_imagenet.py'))
    cfg.merge_from_dict({'train_dataloader.dataset.pipeline.2.type': 'RandomCorp'})
    with pytest.raises(ConfigError, match=r'train_dataloader\.dataset\.pipeline\[2\]\.type'):
        check_config(cfg)


def test_bad_transform_config_names_index_and_value(imagenet_tree):
    with pytest.raises(ValueError, match=r'pipeline\[1\] \(RandomHFlip\).*prob.*1\.5'):
        ImageNetFolder(str(imagenet_tree), pipeline=[dict(type='LoadRGBImage'),
                                                     dict(type='RandomHFlip', prob=1.5)])
    with pytest.raises(ValueError, match=r"pipeline\[0\]: expected a dict with a 'type'"):
        ImageNetFolder(str(imagenet_tree), pipeline=[dict(size=3)])
    with pytest.raises(ValueError, match='random_crop / hflip'):
        ImageNetFolder(str(imagenet_tree), hflip=False, pipeline=[dict(type='LoadRGBImage')])


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / 'train' / 'n1').mkdir(parents=True)
    Image.fromarray(_picture(30, 30, 0)).save(tmp_path / 'train' / 'n1' / 'a.png')
    good = (tmp_path / 'train' / 'n1' / 'a.png').read_bytes()
    (tmp_path / 'train' / 'n1' / 'b.png').write_bytes(good[:80])  # truncated
    ds = _config_dataset(IMAGENET_CFG, 'train_dataloader', **{
        'train_dataloader.dataset.data_root': str(tmp_path),
        'train_dataloader.dataset.resolution': 16})
    assert ds[0]['img'].shape == (3, 16, 16)
    with pytest.raises(OSError, match=r'cannot read image .*b\.png'):
        ds[1]


def test_pipeline_of_wrong_size_names_resolution(imagenet_tree):
    ds = ImageNetFolder(str(imagenet_tree), 'val', 24, pipeline=[
        dict(type='LoadRGBImage'), dict(type='ResizeShortSide'),
        dict(type='SquareCenterCrop', size=20), dict(type='PackGearInputs')])
    with pytest.raises(ValueError, match=r'img of shape \(3, 24, 24\) \(resolution=24\), got '
                                         r'img of shape \(3, 20, 20\)') as e:
        ds[0]
    assert ds.samples[0][0] in str(e.value)


@needs_fashion
def test_fashion_pad_smaller_than_image_says_what_to_use():
    ds = FashionMNIST(FASHION_MNIST, split='test', resolution=16, num_samples=1,
                      pipeline=[dict(type='CenterPad'), dict(type='PackGearInputs')])
    with pytest.raises(ValueError, match=r'cannot pad a 28x28 image to 16x16.*TorchResize'):
        ds[0]
