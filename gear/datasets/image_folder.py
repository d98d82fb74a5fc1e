"""Image datasets read from folders: the ImageNet layout and a flat folder of images.

An item starts as ``dict(img_path=..., label=...)`` and goes through the dataset's ``pipeline``
of registered transforms (:mod:`gear.datasets.transforms`, mmcv's); without a ``pipeline`` the
dataset uses :func:`imagenet_pipeline`: PIL RGB load, short side to ``resolution`` (PIL bicubic),
a square crop, on ImageNet's train split a random crop and flip.

Corrupt data is found as early as a cheap check allows, and named. When the dataset is built
(no image is decoded): a missing split folder, an ImageNet class folder without images, a split
whose class folders differ from the ``train`` split's beside it (its labels would not match),
and empty (0-byte) files. When an item is read: any file that cannot be read as an 8-bit RGB
image (:class:`~.transforms.UnreadableImageError`, naming the file; the pipeline adds the item
index). Errors raised in DataLoader workers reach the main process with their message (torch
re-raises them with the original traceback as text), so the file is named there too. The
opt-in ``skip_corrupt`` policy (:mod:`.skip_corrupt`) skips unreadable files instead, up to a
limit.
"""
import os
import re
from typing import List, Optional, Sequence

from torch.utils.data import Dataset

from gear.registry import DATASETS

from .pipeline import build_pipeline, check_packed, run_pipeline
from .skip_corrupt import CorruptFiles, skip_corrupt_error
from .transforms import UnreadableImageError
from .utils import empty_files, list_images

_IMAGENET_LAYOUT = ('expected the ImageNet layout data_root/{split}/{wnid}/*.JPEG (one folder per '
                    'class, any common image extension), e.g. data_root/train/n01440764/'
                    'n01440764_10026.JPEG')
_TRAILING_LABEL = re.compile(r'_(\d+)$')


def imagenet_pipeline(train: bool, random_crop: bool = True, hflip: bool = True) -> List[dict]:
    """The reference augmentation as transform configs (sizes: the dataset's resolution).

    Args:
        train: random crop / flip allowed (otherwise a centre crop and no flip).
        random_crop: random instead of centre crop, when ``train``.
        hflip: random horizontal flip (p=0.5), when ``train``.
    """
    crop = 'RandomCrop' if train and random_crop else 'SquareCenterCrop'
    steps = [dict(type='LoadRGBImage'), dict(type='ResizeShortSide', interpolation='bicubic'),
             dict(type=crop)]
    if train and hflip:
        steps.append(dict(type='RandomHFlip', prob=0.5))
    return steps + [dict(type='PackGearInputs')]


def _check_num_samples(num_samples: Optional[int]) -> Optional[int]:
    if num_samples is not None and int(num_samples) < 0:
        raise ValueError(f'num_samples must be >= 0 or None, got {num_samples}')
    return None if num_samples is None else int(num_samples)


def _check_resolution(resolution) -> int:
    if int(resolution) < 1:
        raise ValueError(f'resolution must be positive, got {resolution}')
    return int(resolution)


def _check_same_classes(data_root: str, split: str, classes: Sequence[str]) -> None:
    """A split other than ``train`` has the class folders of ``data_root/train`` (when that
    exists): labels are positions in the sorted folder list, so one missing or extra folder
    would shift the labels of every class after it away from the ones the model trained on."""
    train = os.path.join(data_root, 'train')
    if split == 'train' or not os.path.isdir(train):
        return
    with os.scandir(train) as it:
        expected = {e.name for e in it if e.is_dir()}
    root = os.path.join(data_root, split)
    missing, extra = sorted(expected - set(classes)), sorted(set(classes) - expected)
    if missing:
        raise FileNotFoundError(
            f'{len(missing)} class folder(s) of {train} missing from {root}: '
            f'{", ".join(os.path.join(root, m) for m in missing[:5])}'
            f'{" ..." if len(missing) > 5 else ""}; labels are positions in the sorted folder '
            'list, so every label after the gap would not match training')
    if extra:
        raise ValueError(
            f'{len(extra)} class folder(s) of {root} not in {train}: '
            f'{", ".join(os.path.join(root, m) for m in extra[:5])}'
            f'{" ..." if len(extra) > 5 else ""}; labels are positions in the sorted folder list, '
            'so its labels would not match training')


class _PipelineFolder(Dataset):
    """``samples`` of ``(path, label)`` through ``self.pipeline``, with the corrupt-file policy
    (:mod:`.skip_corrupt`); shared by the two datasets."""

    @staticmethod
    def config_error(skip_corrupt: Optional[dict] = None, **_) -> Optional[str]:
        """What is wrong with this config (the key, relative to the dataset, first), or None.
        ``gear.engine.config_check`` calls this before anything is built."""
        return skip_corrupt_error(skip_corrupt)

    def _corrupt_policy(self, folder: str, skip_corrupt: Optional[dict]) -> None:
        """``self.corrupt``: None (unreadable files are errors) or the skipped-file count."""
        self.owner = f'{type(self).__name__}({folder})'
        self.corrupt = None if skip_corrupt is None else CorruptFiles(self.owner, skip_corrupt)

    def _set_samples(self, samples: List[tuple]) -> None:
        """``self.samples``: ``samples`` once no file is empty (with ``skip_corrupt``: without
        the empty files). Only sizes are read, not images."""
        empty = empty_files(p for p, _ in samples)
        if empty and self.corrupt is None:
            shown = ', '.join(empty[:5]) + (f' and {len(empty) - 5} more' if len(empty) > 5 else '')
            raise UnreadableImageError(
                f'{self.owner}: {len(empty)} empty (0-byte) image file(s): {shown}; an '
                'interrupted copy or extraction leaves these: restore them, or set '
                'skip_corrupt=dict(max_files=N) to skip up to N unreadable files')
        self.samples = samples if self.corrupt is None else self.corrupt.drop_empty(samples, empty)

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, idx: int) -> dict:
        path, label = self.samples[idx]
        what = f'{type(self).__name__} item {idx} ({path})'
        item = run_pipeline(self.pipeline, dict(img_path=path, label=label, sample_idx=idx), what)
        return check_packed(item, self.resolution, what)

    def __getitem__(self, idx: int) -> dict:
        if self.corrupt is None:
            return self._read(idx)
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f'index {idx} out of range for {self.owner} of length {n}')
        for step in range(n):  # the next item that reads: a function of idx alone
            j = (idx + step) % n
            try:
                return self._read(j)
            except UnreadableImageError as e:
                instead = f' (asked for item {idx % n})' if step else ''
                self.corrupt.skip(self.samples[j][0], str(e), f'item {j}{instead}')
        raise RuntimeError(f'{self.owner}: none of its {n} files can be read')


@DATASETS.register_module()
class ImageNetFolder(_PipelineFolder):
    """ImageNet-style classification folders, ``data_root/{split}/{wnid}/*.JPEG``.

    The class index of an image is the position of its folder (wnid) in the sorted list of class
    folders of ``split`` (``metainfo['classes']``). Items are ``dict(img=FloatTensor (3, R, R) in
    [-1, 1], label=int)``. Without ``pipeline``, every image is resized (short side to
    ``resolution``, PIL bicubic) and cropped to ``resolution x resolution``; on the ``'train'``
    split the crop is random when ``random_crop`` (centred otherwise) and the image is mirrored
    with p=0.5 when ``hflip``; on any other split the crop is centred and nothing is flipped.
    Randomness comes from the ``torch`` RNG, so the DataLoader's per-worker seeding makes it
    reproducible.

    Args:
        data_root: folder holding one sub-folder per split.
        split: sub-folder to read, e.g. ``'train'`` or ``'val'``.
        resolution: side ``R`` of the square output image; fills the size of the pipeline's
            sized transforms that leave it out.
        random_crop: random (instead of centre) crop on the train split (default True); only
            without ``pipeline``.
        hflip: random horizontal flip (p=0.5) on the train split (default True); only without
            ``pipeline``.
        num_samples: use only the first ``num_samples`` images in (class, file name) order (all
            when ``None``); counted before ``skip_corrupt`` drops empty files.
        pipeline: transform configs applied to ``dict(img_path, label, sample_idx)``, ending in
            ``PackGearInputs`` (default: :func:`imagenet_pipeline`).
        skip_corrupt: ``None`` (default): an unreadable file is an error naming it;
            ``dict(max_files=N)``: skip unreadable files (another item is returned, the same
            for the same index), logging each, until one dataset copy (the main process's or a
            DataLoader worker's) has met more than ``N`` distinct ones (:mod:`.skip_corrupt`).
    """

    def __init__(self, data_root: str, split: str = 'train', resolution: int = 256,
                 random_crop: Optional[bool] = None, hflip: Optional[bool] = None,
                 num_samples: Optional[int] = None, pipeline: Optional[Sequence[dict]] = None,
                 skip_corrupt: Optional[dict] = None):
        self.data_root, self.split = data_root, split
        root = os.path.join(data_root, split)
        self._corrupt_policy(root, skip_corrupt)
        self.resolution = _check_resolution(resolution)
        self.train = split == 'train'
        if pipeline is not None and (random_crop is not None or hflip is not None):
            raise ValueError('ImageNetFolder: random_crop / hflip choose the default pipeline; '
                             'with pipeline given, put RandomCrop / RandomHFlip in it instead')
        self.random_crop = True if random_crop is None else bool(random_crop)
        self.hflip = True if hflip is None else bool(hflip)
        if not os.path.isdir(root):
            raise FileNotFoundError(f'ImageNet split folder {root} does not exist; '
                                    f'{_IMAGENET_LAYOUT}')
        with os.scandir(root) as it:
            classes = sorted(e.name for e in it if e.is_dir())
        if not classes:
            raise FileNotFoundError(f'no class folders in {root}; {_IMAGENET_LAYOUT}')
        _check_same_classes(data_root, split, classes)
        samples = []
        for label, wnid in enumerate(classes):
            paths = list_images(os.path.join(root, wnid))
            if not paths:
                raise FileNotFoundError(
                    f'class folder {os.path.join(root, wnid)} (label {label}) has no image files '
                    f'(an interrupted extraction leaves these); {_IMAGENET_LAYOUT}')
            samples += [(path, label) for path in paths]
        num_samples = _check_num_samples(num_samples)
        self._set_samples(samples if num_samples is None else samples[:num_samples])
        self.metainfo = dict(classes=tuple(classes))
        if pipeline is None:
            pipeline = imagenet_pipeline(self.train, self.random_crop, self.hflip)
        self.pipeline = build_pipeline(pipeline, self.resolution, 'ImageNetFolder')


@DATASETS.register_module()
class ImageFolder(_PipelineFolder):
    """A flat folder of images, sorted by file name, optionally labelled by the file names.

    Made for small real image sets such as foolbox's bundled samples (``cifar10_00_3.png``: label
    3). Without ``pipeline``, every image is resized (short side to ``resolution``, PIL bicubic;
    untouched when already that size) and centre-cropped. Items are ``dict(img=FloatTensor (3, R,
    R) in [-1, 1], label=int)``, label -1 with ``label_from='none'``.

    Args:
        data_root: the folder (not searched recursively).
        resolution: side ``R`` of the square output image; fills the size of the pipeline's
            sized transforms that leave it out.
        label_from: ``'filename'``: the integer after the last ``_`` before the extension (a file
            without one is an error); ``'none'``: every label is -1.
        num_samples: use only the first ``num_samples`` files (all when ``None``).
        pattern: glob on the file name, e.g. ``'cifar10_*.png'``; ``None`` takes every file with
            an image extension.
        classes: optional class names, stored in ``metainfo['classes']``.
        pipeline: transform configs applied to ``dict(img_path, label, sample_idx)``, ending in
            ``PackGearInputs`` (default: ``imagenet_pipeline(train=False)``).
        skip_corrupt: ``None`` (default) or ``dict(max_files=N)``, as for
            :class:`ImageNetFolder`.
    """

    def __init__(self, data_root: str, resolution: int = 32, label_from: str = 'filename',
                 num_samples: Optional[int] = None, pattern: Optional[str] = None,
                 classes: Optional[Sequence[str]] = None,
                 pipeline: Optional[Sequence[dict]] = None, skip_corrupt: Optional[dict] = None):
        self._corrupt_policy(data_root, skip_corrupt)
        if label_from not in ('filename', 'none'):
            raise ValueError(f"label_from must be 'filename' or 'none', got {label_from!r}")
        self.data_root, self.label_from = data_root, label_from
        self.resolution = _check_resolution(resolution)
        if not os.path.isdir(data_root):
            raise FileNotFoundError(f'image folder {data_root} does not exist')
        paths = list_images(data_root, pattern)
        if not paths:
            what = f'matching {pattern!r}' if pattern else 'with an image extension'
            raise FileNotFoundError(f'no image files {what} in {data_root}')
        num_samples = _check_num_samples(num_samples)
        if num_samples is not None:
            paths = paths[:num_samples]
        self._set_samples([(p, self._label_of(p)) for p in paths])
        self.metainfo = dict(classes=tuple(classes)) if classes is not None else dict()
        self.pipeline = build_pipeline(imagenet_pipeline(train=False) if pipeline is None
                                       else pipeline, self.resolution, 'ImageFolder')

    def _label_of(self, path: str) -> int:
        if self.label_from == 'none':
            return -1
        stem = os.path.splitext(os.path.basename(path))[0]
        m = _TRAILING_LABEL.search(stem)
        if m is None:
            raise ValueError(f"label_from='filename' needs names ending in _<label> before the "
                             f"extension (e.g. cifar10_00_3.png), got {path}")
        return int(m.group(1))
