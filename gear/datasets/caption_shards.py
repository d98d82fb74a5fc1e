"""Image-caption pairs in WebDataset tar shards, as a map-style dataset for text-to-image training.

Shards are tars in the ``webdataset`` package's format: a sample is ``KEY.jpg|jpeg|png|webp`` plus
``KEY.json`` (a dict whose ``caption_key`` field is the caption) or ``KEY.txt``. They are written
by :func:`~.caption_shards_writer.write_caption_shards` (``tools/make_caption_shards.py``), or by
any webdataset writer.

Map-style on purpose, not webdataset's streaming ``IterableDataset``: every sample has an index,
so mmengine's ``InfiniteSampler(shuffle=True)`` draws one global permutation over all shards (not
a shuffle buffer inside a few open shards), slices it over the ranks (rank ``r`` of ``W`` takes
positions ``r, r + W, ...``), the DataLoader deals each rank's batches to its workers, and
mmengine's resume, which advances the dataloader by the number of finished iterations, lands on
exactly the sample the interrupted run would have read next. The number of workers and shards
changes none of it.

Random access comes from an index of (shard, data offset, size) of each sample's image and
caption members, read when the dataset is built from each shard's sidecar ``<shard>.idx.json``
(:mod:`.shard_index`). A shard without a sidecar, or with a stale one (the tar's size or mtime is
not what it records, named in the log), is indexed by scanning its tar headers instead, and the
log says which shards were. Checked at build time: a pattern matching no shard, a missing shard,
a sample with an image but no caption or a caption but no image, or with two images (each error
names the shard and the key). The index is held in numpy arrays, not Python lists, so forked
DataLoader workers share it without copy-on-write growth.

An item starts as ``dict(img=uint8 (H, W, 3) RGB, caption=str, key=str, sample_idx=int)``
(decoded with PIL, as :class:`~.transforms.LoadRGBImage`) and goes through the ``pipeline``. Tar
files are opened lazily, by the process that reads them: the open-file cache is dropped when the
dataset is pickled and when the process id changes (a forked worker), so ``num_workers > 0``
works with fork, forkserver and spawn; reads are positional (``os.pread``), never a shared seek.
"""
import io
import json
import logging
import os
from collections import OrderedDict
from typing import List, Optional, Sequence, Union

import numpy as np
from mmengine.logging import print_log
from PIL import Image
from torch.utils.data import Dataset

from gear.registry import DATASETS

from .pipeline import build_pipeline, run_pipeline
from .shard_index import expand_shards, group_samples, read_members
from .transforms.loading import UnreadableImageError, _wider_than_8_bits

IMAGE_EXTS = ('jpg', 'jpeg', 'png', 'webp')
CAPTION_EXTS = ('json', 'txt')  # a sample with both reads its json


def caption_pipeline(resolution: int) -> List[dict]:
    """The default steps: short side to ``resolution`` (PIL bicubic; untouched when it already
    is), centre crop to a square, ``PackGearInputs`` (``dict(img, caption)``).

    Args:
        resolution: side of the square output image (filled in by the dataset).
    """
    return [dict(type='ResizeShortSide', interpolation='bicubic'), dict(type='SquareCenterCrop'),
            dict(type='PackGearInputs')]


def _shown(names: Sequence[str]) -> str:
    return ', '.join(names[:5]) + (f' and {len(names) - 5} more' if len(names) > 5 else '')


class _OpenShards:
    """Read-only file descriptors of the shards one process reads, at most ``max_open`` (LRU);
    emptied in a new process (pid change) and when pickled."""

    def __init__(self, max_open: int = 64):
        self.max_open, self.pid, self.fds = max_open, os.getpid(), OrderedDict()

    def read(self, path: str, offset: int, size: int) -> bytes:
        if self.pid != os.getpid():  # a forked child: the fds are the parent's; open our own
            for fd in self.fds.values():
                os.close(fd)
            self.pid, self.fds = os.getpid(), OrderedDict()
        fd = self.fds.pop(path, None)
        if fd is None:
            fd = os.open(path, os.O_RDONLY)
            if len(self.fds) >= self.max_open:
                os.close(self.fds.popitem(last=False)[1])
        self.fds[path] = fd  # most recently used last
        data = os.pread(fd, size, offset)
        if len(data) != size:
            raise ValueError(f'shard {path}: {size} bytes at offset {offset} expected, read '
                             f'{len(data)} (the tar was truncated after it was indexed)')
        return data

    def __getstate__(self):
        return dict(max_open=self.max_open, pid=None, fds=OrderedDict())

    def __del__(self):
        try:
            if self.pid == os.getpid():
                for fd in self.fds.values():
                    os.close(fd)
        except Exception:  # interpreter shutdown: nothing left to tidy
            pass


@DATASETS.register_module()
class CaptionShards(Dataset):
    """Image-caption pairs from WebDataset tar shards; items ``dict(img=FloatTensor (3, R, R) in
    [-1, 1], caption=str)``.

    Samples are in shard order, then in tar order within a shard. See the module docstring for the
    sharding / resume contract and the checks made at build time.

    Args:
        shards: a glob (``'data/train-*.tar'``, sorted), a brace pattern
            (``'data/train-{000000..000009}.tar'``) or a list of either.
        pipeline: transform configs applied to ``dict(img=uint8 (H, W, 3), caption, key,
            sample_idx)``, ending in ``PackGearInputs`` (default: :func:`caption_pipeline`).
        caption_key: field of ``KEY.json`` holding the caption.
        num_samples: use only the first ``num_samples`` samples (all when ``None``); shards past
            them are not indexed.
        resolution: side ``R`` of the square output image; fills the size of the pipeline's sized
            transforms that leave it out.
        max_open_shards: most tar files one process keeps open.
    """

    def __init__(self, shards: Union[str, Sequence[str]], pipeline: Optional[Sequence[dict]] = None,
                 caption_key: str = 'caption', num_samples: Optional[int] = None,
                 resolution: int = 256, max_open_shards: int = 64):
        if int(resolution) < 1:
            raise ValueError(f'CaptionShards.resolution must be positive, got {resolution}')
        if num_samples is not None and int(num_samples) < 0:
            raise ValueError(f'CaptionShards.num_samples must be >= 0 or None, got {num_samples}')
        self.resolution, self.caption_key = int(resolution), caption_key
        self.shards = expand_shards(shards, 'CaptionShards.shards')
        self._index(None if num_samples is None else int(num_samples))
        self.metainfo = dict(dataset_name='CaptionShards', shards=len(self.shards))
        self.pipeline = build_pipeline(caption_pipeline(self.resolution) if pipeline is None
                                       else pipeline, self.resolution, 'CaptionShards')
        self._files = _OpenShards(max_open_shards)

    def _index(self, limit: Optional[int]) -> None:
        """Fill the numpy index arrays from the shards' sidecars (or scans), validating samples."""
        rows, keys, scanned = [], [], {}
        for s, shard in enumerate(self.shards):
            if limit is not None and len(rows) >= limit:
                self.shards = self.shards[:s]  # the rest are never read
                break
            members, how = read_members(shard)
            if how != 'sidecar':
                scanned.setdefault(how.split(':')[0], []).append(
                    shard if how == 'missing' else how[len('stale: '):])
            for key, exts in group_samples(members, shard).items():
                images = [e for e in IMAGE_EXTS if e in exts]
                captions = [e for e in CAPTION_EXTS if e in exts]
                found = ', '.join(f'{key}.{e}' for e in exts)
                if len(images) > 1:
                    raise ValueError(f'shard {shard}: key {key!r} has {len(images)} images '
                                     f'({found}); a sample has one')
                if images and not captions:
                    raise ValueError(f'shard {shard}: key {key!r} has an image but no caption '
                                     f'(members: {found}; expected {key}.json or {key}.txt)')
                if captions and not images:
                    raise ValueError(f'shard {shard}: key {key!r} has a caption but no image '
                                     f'(members: {found}; expected {key}.' +
                                     '|'.join(IMAGE_EXTS) + ')')
                if not images:
                    continue  # neither: not an image-caption sample (e.g. a lone KEY.cls)
                (io_, is_), (co, cs) = exts[images[0]], exts[captions[0]]
                rows.append((s, IMAGE_EXTS.index(images[0]), io_, is_,
                             CAPTION_EXTS.index(captions[0]), co, cs))
                keys.append(key)
        if limit is not None:
            rows, keys = rows[:limit], keys[:limit]
        if not rows and limit != 0:
            raise ValueError(f'CaptionShards: no image-caption samples in {len(self.shards)} '
                             f'shard(s) ({_shown(self.shards)})')
        for how, names in scanned.items():
            print_log(f'CaptionShards: {len(names)} shard(s) with a {how} sidecar index were '
                      f'indexed by scanning the tar: {_shown(names)}; write_sidecar(shard) '
                      '(gear.datasets.shard_index) writes a fresh one',
                      logger='current', level=logging.WARNING)
        table = np.array(rows, dtype=np.int64).reshape(-1, 7)  # (N, 7)
        self._shard, self._img_ext, self._cap_ext = (table[:, i].astype(np.int32)
                                                     for i in (0, 1, 4))  # (N,) each
        self._img = np.ascontiguousarray(table[:, 2:4])  # (N, 2) offset, size
        self._cap = np.ascontiguousarray(table[:, 5:7])  # (N, 2) offset, size
        self._keys = np.array([k.encode('utf-8') for k in keys], dtype=bytes)  # (N,) S<max>

    def __len__(self) -> int:
        return len(self._keys)

    def key(self, idx: int) -> str:
        """The sample key of item ``idx``."""
        return self._keys[idx].decode('utf-8')

    def raw(self, idx: int) -> dict:
        """``dict(image=bytes, image_ext, caption=str, key, shard)`` of item ``idx``, undecoded."""
        if not -len(self) <= idx < len(self):
            raise IndexError(f'index {idx} out of range for CaptionShards of length {len(self)}')
        shard, key = self.shards[self._shard[idx]], self.key(idx)
        image = self._files.read(shard, int(self._img[idx, 0]), int(self._img[idx, 1]))
        cap_ext = CAPTION_EXTS[self._cap_ext[idx]]
        data = self._files.read(shard, int(self._cap[idx, 0]), int(self._cap[idx, 1]))
        where = f'shard {shard} member {key}.{cap_ext}'
        try:
            text = data.decode('utf-8')
            caption = json.loads(text) if cap_ext == 'json' else text.strip()
        except ValueError as e:
            raise ValueError(f'{where}: not valid {cap_ext} ({e})') from e
        if cap_ext == 'json':
            if not isinstance(caption, dict) or self.caption_key not in caption:
                got = (f'keys {sorted(caption)}' if isinstance(caption, dict)
                       else type(caption).__name__)
                raise KeyError(f'{where}: no caption_key {self.caption_key!r} (got {got})')
            caption = caption[self.caption_key]
        if not isinstance(caption, str):
            raise ValueError(f'{where}: caption {self.caption_key!r} must be a str, got '
                             f'{type(caption).__name__}')
        return dict(image=image, image_ext=IMAGE_EXTS[self._img_ext[idx]], caption=caption,
                    key=key, shard=shard)

    def __getitem__(self, idx: int) -> dict:
        raw = self.raw(idx)
        what = f'CaptionShards item {idx} (shard {raw["shard"]} key {raw["key"]})'
        try:
            with Image.open(io.BytesIO(raw['image'])) as im:
                mode = im.mode
                if not _wider_than_8_bits(mode):
                    img = np.array(im.convert('RGB'), dtype=np.uint8)  # (H, W, 3)
        except Exception as e:
            raise UnreadableImageError(f'cannot read image {raw["key"]}.{raw["image_ext"]} in '
                                       f'shard {raw["shard"]}: {type(e).__name__}: {e}') from e
        if _wider_than_8_bits(mode):
            raise UnreadableImageError(f'cannot read image {raw["key"]}.{raw["image_ext"]} in '
                                       f'shard {raw["shard"]}: PIL mode {mode!r} is wider than '
                                       '8 bits')
        results = dict(img=img, caption=raw['caption'], key=raw['key'], sample_idx=idx)
        item = run_pipeline(self.pipeline, results, what)
        shape = tuple(getattr(item.get('img') if isinstance(item, dict) else None, 'shape', ()))
        r = self.resolution
        if shape != (3, r, r) or not isinstance(item.get('caption'), str):
            raise ValueError(f'{what}: the pipeline must end in PackGearInputs and give img of '
                             f'shape (3, {r}, {r}) (resolution={r}) and a str caption, got '
                             f'{sorted(item) if isinstance(item, dict) else type(item).__name__} '
                             f'with img shape {shape}')
        return item
