"""ImageFolder and ImageNetFolder on foolbox's bundled real CIFAR-10 / ImageNet images."""
import os.path as osp
import pathlib
import re
import traceback

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from PIL import Image

from gear.datasets import ImageFolder, ImageNetFolder
from gear.datasets.transforms import UnreadableImageError
from gear.registry import DATASETS

from ..conftest import REPO

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


# --- corrupt data: errors naming the file, and the skip_corrupt policy ---------------------------

def _jpegs(root, split='val', per_class=3, size=32):
    """``root/split/<wnid>/*.JPEG``: real photos (foolbox's ImageNet samples) saved as small
    JPEGs, two classes of ``per_class``; returns the paths in dataset order."""
    photos = sorted(DATA.glob('imagenet_*.jpg'))
    paths = []
    for c, wnid in enumerate(('n00000001', 'n00000002')):
        folder = root / split / wnid
        folder.mkdir(parents=True)
        for k in range(per_class):
            with Image.open(photos[c * per_class + k]) as im:
                path = folder / f'{wnid}_{k}.JPEG'
                im.convert('RGB').resize((size, size), Image.BICUBIC).save(path, quality=95)
                paths.append(path)
    return paths


def _truncate(path):
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def _text(path):
    path.write_text('<html>404 Not Found</html>')


def _grey16(path):
    """A 16-bit grey PNG (PIL mode I;16) under the JPEG's name: its values above 255 are what
    ``convert('RGB')`` would clip."""
    with Image.open(path) as im:
        grey = np.asarray(im.convert('L'), np.uint16) * 257  # (H, W), 0..65535
    Image.fromarray(grey).save(path, format='PNG')
    assert Image.open(path).mode == 'I;16'


@pytest.mark.parametrize('corrupt,message', [
    (_truncate, 'image file is truncated'),
    (_text, 'cannot identify image file'),
    (_grey16, "PIL mode 'I;16' has samples wider than 8 bits"),
], ids=['truncated', 'not-an-image', '16-bit-grey'])
def test_unreadable_jpeg_is_named_when_first_read(tmp_path, corrupt, message):
    paths = _jpegs(tmp_path)
    corrupt(paths[4])
    ds = ImageNetFolder(str(tmp_path), split='val', resolution=32)  # built: nothing decoded
    assert ds[3]['img'].shape == (3, 32, 32)
    with pytest.raises(UnreadableImageError, match=message) as e:
        ds[4]
    assert str(e.value).startswith(f'cannot read image {paths[4]}:')
    assert 'ImageNetFolder item 4' in ''.join(getattr(e.value, '__notes__', []))


def test_empty_file_is_named_when_the_dataset_is_built(tmp_path):
    paths = _jpegs(tmp_path)
    paths[1].write_bytes(b'')
    with pytest.raises(UnreadableImageError, match='1 empty \\(0-byte\\) image file') as e:
        ImageNetFolder(str(tmp_path), split='val', resolution=32)
    assert str(paths[1]) in str(e.value) and 'skip_corrupt' in str(e.value)
    # a flat folder too
    with pytest.raises(UnreadableImageError, match=re.escape(str(paths[1]))):
        ImageFolder(str(paths[1].parent), label_from='none')


@pytest.mark.parametrize('mode', ['CMYK', 'L'])
def test_cmyk_and_grey_jpegs_are_read_as_rgb(tmp_path, mode):
    """Real ImageNet holds a few CMYK and grey JPEGs; like the reference pipelines
    (``Image.open(p).convert('RGB')``), they are converted to RGB, not refused."""
    paths = _jpegs(tmp_path)
    with Image.open(paths[2]) as im:
        im.convert(mode).save(paths[2], quality=95)
    with Image.open(paths[2]) as im:
        assert im.mode == mode
        expected = _tensor(im)  # (3, 32, 32): convert('RGB') of the file as decoded
    item = ImageNetFolder(str(tmp_path), split='val', resolution=32)[2]  # 32 px: no resize
    assert torch.equal(item['img'], expected)
    if mode == 'L':
        assert torch.equal(item['img'][0], item['img'][1])


def test_a_split_missing_a_class_folder_names_it(tmp_path):
    """val without one of train's class folders would label its images one class off."""
    _jpegs(tmp_path, 'train')
    _jpegs(tmp_path, 'val')
    assert len(ImageNetFolder(str(tmp_path), split='val', resolution=32)) == 6
    for f in (tmp_path / 'val' / 'n00000001').iterdir():
        f.unlink()
    with pytest.raises(FileNotFoundError, match='has no image files') as e:  # left empty
        ImageNetFolder(str(tmp_path), split='val', resolution=32)
    assert str(tmp_path / 'val' / 'n00000001') + ' (label 0)' in str(e.value)
    (tmp_path / 'val' / 'n00000001').rmdir()  # gone
    with pytest.raises(FileNotFoundError, match='missing from') as e:
        ImageNetFolder(str(tmp_path), split='val', resolution=32)
    assert str(tmp_path / 'val' / 'n00000001') in str(e.value)
    (tmp_path / 'val' / 'n00000001').mkdir()
    (tmp_path / 'train' / 'n00000001' / 'n00000001_0.JPEG').rename(
        tmp_path / 'val' / 'n00000001' / 'n00000001_0.JPEG')
    extra = tmp_path / 'val' / 'n00000000'  # a class train does not have, sorted first
    extra.mkdir()
    (tmp_path / 'val' / 'n00000002' / 'n00000002_0.JPEG').rename(extra / 'x.JPEG')
    with pytest.raises(ValueError, match='not in') as e:
        ImageNetFolder(str(tmp_path), split='val', resolution=32)
    assert str(extra) in str(e.value)


def _log(name, tmp_path):
    """A current MMLogger writing to a file, as in a run; returns the file."""
    path = tmp_path / f'{name}.log'
    MMLogger.get_instance(f'{name}-{tmp_path.name}', log_file=str(path))
    return path


def test_skip_corrupt_returns_the_next_readable_item_logs_and_counts(tmp_path):
    paths = _jpegs(tmp_path / 'data', per_class=4)  # items 0..7
    log = _log('skip', tmp_path)
    _truncate(paths[1])
    _text(paths[2])
    _grey16(paths[7])
    paths[5].write_bytes(b'')  # dropped when built: the others shift down by one from 5 on
    clean = ImageNetFolder(str(tmp_path / 'data'), split='val', resolution=32,
                           skip_corrupt=dict(max_files=5))
    assert len(clean) == 7 and str(paths[5]) not in [p for p, _ in clean.samples]
    assert list(clean.corrupt.files) == [str(paths[5])]
    # item i -> the file it gives: 1 and 2 unreadable -> 3; the last (file 7) wraps round to 0
    expected = [0, 3, 3, 3, 4, 6, 0]
    items = [clean[i] for i in range(7)]
    for item, k in zip(items, expected):
        with Image.open(paths[k]) as im:
            assert torch.equal(item['img'], _tensor(im))
        assert item['label'] == (0 if k < 4 else 1)
    assert list(clean.corrupt.files) == [str(p) for p in (paths[5], paths[1], paths[2], paths[7])]
    assert torch.equal(clean[2]['img'], items[2]['img'])  # the same again: a function of idx
    assert len(clean.corrupt) == 4  # met again, not counted again
    text = log.read_text()
    for k in (1, 2, 5, 7):
        assert 'skip_corrupt skipped' in text and str(paths[k]) in text
    assert 'item 2 (asked for item 1)' in text and 'limit skip_corrupt.max_files=5' in text
    assert 'this one counted before' in text and 'the main process' in text


def test_skip_corrupt_stops_above_the_limit_naming_count_and_file(tmp_path):
    paths = _jpegs(tmp_path, per_class=4)
    for k in (1, 2, 6):
        _truncate(paths[k])
    ds = ImageNetFolder(str(tmp_path), split='val', resolution=32, skip_corrupt=dict(max_files=2))
    ds[0], ds[1]  # files 1 and 2 skipped: 2, at the limit
    with pytest.raises(RuntimeError, match='3 distinct unreadable image files skipped, more than '
                                           'skip_corrupt.max_files=2') as e:
        ds[6]
    assert f'the last: cannot read image {paths[6]}: OSError' in str(e.value)
    paths[0].write_bytes(b'')  # an empty file counts too, when the dataset is built
    with pytest.raises(RuntimeError, match='1 distinct .* more than skip_corrupt.max_files=0') as e:
        ImageFolder(str(paths[0].parent), label_from='none', skip_corrupt=dict(max_files=0))
    assert str(paths[0]) in str(e.value)


@pytest.mark.parametrize('bad', [True, dict(), dict(max_files=-1), dict(max_files=2, log=True)])
def test_skip_corrupt_config_errors_name_the_key(tmp_path, bad):
    _jpegs(tmp_path)
    with pytest.raises(ValueError, match=r'ImageNetFolder\(.*\): skip_corrupt'):
        ImageNetFolder(str(tmp_path), split='val', skip_corrupt=bad)


def _workers(ds, n=2):
    return torch.utils.data.DataLoader(ds, batch_size=2, num_workers=n,
                                       multiprocessing_context='fork')


def test_errors_in_dataloader_workers_still_name_the_file(tmp_path):
    paths = _jpegs(tmp_path)
    _truncate(paths[3])
    with pytest.raises(UnreadableImageError) as e:
        list(_workers(ImageNetFolder(str(tmp_path), split='val', resolution=32)))
    assert 'in DataLoader worker process' in str(e.value)
    assert f'cannot read image {paths[3]}' in str(e.value)
    assert 'on ImageNetFolder item 3' in str(e.value)  # the pipeline's note, in the traceback


def test_skip_corrupt_counts_per_worker_copy(tmp_path):
    """Each worker's copy counts its own skips: two workers may skip max_files each."""
    paths = _jpegs(tmp_path, per_class=4)
    log = _log('workers', tmp_path)
    for k in (1, 3):  # batch [0, 1] goes to worker 0, batch [2, 3] to worker 1
        _truncate(paths[k])
    ds = ImageNetFolder(str(tmp_path), split='val', resolution=32, skip_corrupt=dict(max_files=1))
    batches = list(_workers(ds))
    assert [b['label'].tolist() for b in batches] == [[0, 0], [0, 1], [1, 1], [1, 1]]
    assert 'DataLoader worker 0 of 2' in log.read_text()
    assert 'DataLoader worker 1 of 2' in log.read_text()
    _truncate(paths[0])  # now worker 0 meets two
    with pytest.raises(RuntimeError, match='2 distinct unreadable image files skipped') as e:
        list(_workers(ds))
    assert 'DataLoader worker 0 of 2' in str(e.value)
    assert f'the last: cannot read image {paths[1]}' in str(e.value)


SHIPPED = 'configs/tokenizer/tokenizer_vq16_imagenet.py'  # configs/_base_/datasets/imagenet.py


def _shipped_train_loader(root, **options):
    """The train DataLoader of a shipped ImageNet config, read, overridden (as --cfg-options)
    and checked as tools/train.py does, built as the runner builds it; 2 workers (2 CPUs),
    4 images a step, no pinned memory (no GPU here: pinning on CPU costs 5 s a loader)."""
    from mmengine.runner import Runner

    from gear.engine import check_config
    from gear.engine.batch import rank_dataloader_cfg
    from gear.engine.config_check import read_config

    cfg = read_config(osp.join(REPO, SHIPPED), {
        'train_dataloader.dataset.data_root': str(root),
        'val_dataloader.dataset.data_root': str(root), 'train_dataloader.num_workers': 2,
        'train_dataloader.pin_memory': False, 'global_batch_size': 4, **options})
    check_config(cfg)
    return Runner.build_dataloader(rank_dataloader_cfg(cfg.train_dataloader,
                                                       cfg.global_batch_size, 1), seed=0)


def _run(loader, steps):
    """``(batches, error)`` of ``steps`` steps of ``loader``: the batches until the first error
    and that error as text (None if none). The error's frames are cleared, so that they do not
    keep the loader's persistent workers alive until a garbage collection (whose shutdown of
    them waits 5 s a worker)."""
    batches, it = [], iter(loader)
    try:
        for _ in range(steps):
            batches.append(next(it))
    except Exception as e:
        traceback.clear_frames(e.__traceback__)
        return batches, f'{type(e).__name__}: {e}'
    return batches, None


def test_shipped_imagenet_loader_names_the_file_or_skips_it(tmp_path):
    paths = _jpegs(tmp_path, 'train', per_class=4)
    _truncate(paths[5])
    _, error = _run(_shipped_train_loader(tmp_path), 2)  # the 8 images, shuffled
    assert error.startswith('UnreadableImageError: Caught UnreadableImageError in DataLoader '
                            'worker process')
    assert f'cannot read image {paths[5]}' in error
    loader = _shipped_train_loader(tmp_path, **{'train_dataloader.dataset.skip_corrupt':
                                                dict(max_files=1)})
    assert loader.persistent_workers and loader.dataset.corrupt.max_files == 1
    batches, error = _run(loader, 4)  # two passes
    assert error is None and [b['img'].shape for b in batches] == [(4, 3, 256, 256)] * 4
