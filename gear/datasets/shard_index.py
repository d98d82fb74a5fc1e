"""Where each sample's members lie in WebDataset tar shards: shard lists, tar scans, sidecars.

A shard is a plain (uncompressed) tar in the format of the ``webdataset`` package: a sample is the
members sharing a key, ``KEY.png`` + ``KEY.json`` (the key is the member name up to the first dot
of its base name, as webdataset splits it). Random access needs, per member, the offset of its
data in the tar and its size (``TarInfo.offset_data``, ``TarInfo.size``). The writer
(:mod:`.caption_shards_writer`) stores them in a sidecar ``<shard>.idx.json`` beside each shard::

    {"format": "gear.shard_index", "version": 1, "shard": "train-000000.tar",
     "size": <bytes of the tar>, "mtime_ns": <its st_mtime_ns>,
     "members": [[name, offset_data, size], ...]}        # tar order: exactly a tarfile scan

A sidecar is *stale* when the tar's size or mtime differs from what it records (the tar was
rewritten, or copied without keeping mtimes); the reader then scans the tar instead, which reads
one 512-byte header per member.
"""
import glob
import json
import os
import tarfile
from typing import Dict, List, Optional, Sequence, Tuple, Union

from braceexpand import braceexpand

SIDECAR_FORMAT, SIDECAR_VERSION = 'gear.shard_index', 1
Member = Tuple[str, int, int]  # (name, offset_data, size)


def sidecar_path(shard: str) -> str:
    """The index file written beside ``shard``: ``<shard>.idx.json``."""
    return shard + '.idx.json'


def expand_shards(shards: Union[str, Sequence[str]], owner: str = 'shards') -> List[str]:
    """The shard paths named by ``shards``, in order.

    Args:
        shards: a glob (``data/train-*.tar``, sorted), a brace pattern
            (``data/train-{000000..000009}.tar``, in expansion order; every file must exist), or a
            list of either.
        owner: who asks (e.g. ``'CaptionShards.shards'``), named in errors.

    Raises:
        FileNotFoundError: a pattern matched no file (naming it), or a brace-expanded / listed
            shard does not exist (naming the first missing ones).
    """
    patterns = [shards] if isinstance(shards, str) else list(shards)
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f'{owner}: expected a glob, a brace pattern or a list of them, got '
                         f'{shards!r}')
    paths = []
    for pattern in patterns:
        for expanded in braceexpand(pattern):
            if glob.has_magic(expanded):
                matched = sorted(p for p in glob.glob(expanded) if os.path.isfile(p))
                if not matched:
                    source = f' (from {pattern!r})' if expanded != pattern else ''
                    raise FileNotFoundError(f'{owner}: no shard matched {expanded!r}{source}')
                paths += matched
            else:
                paths.append(expanded)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        more = f' and {len(missing) - 5} more' if len(missing) > 5 else ''
        shown = ', '.join(missing[:5]) + more
        raise FileNotFoundError(f'{owner}: {len(missing)} of {len(paths)} shard(s) named by '
                                f'{shards!r} do not exist: {shown}')
    return paths


def scan_tar(shard: str) -> List[Member]:
    """``[(name, offset_data, size), ...]`` of the regular files in ``shard``, in tar order."""
    try:
        with tarfile.open(shard, 'r:') as tar:  # 'r:': uncompressed only (random access)
            return [(m.name, m.offset_data, m.size) for m in tar if m.isfile()]
    except (tarfile.TarError, OSError) as e:
        raise ValueError(f'cannot read shard {shard} as an uncompressed tar: '
                         f'{type(e).__name__}: {e}') from e


def _stat(shard: str) -> Dict[str, int]:
    st = os.stat(shard)
    return dict(size=st.st_size, mtime_ns=st.st_mtime_ns)


def write_sidecar(shard: str, path: Optional[str] = None, name: Optional[str] = None) -> str:
    """Scan ``shard`` and write its sidecar to ``path`` (default :func:`sidecar_path`).

    Args:
        shard: the tar to index.
        path: where to write the index (the writer gives a temporary name).
        name: the shard's base name recorded in the index (default: ``shard``'s).
    """
    path = sidecar_path(shard) if path is None else path
    index = dict(format=SIDECAR_FORMAT, version=SIDECAR_VERSION,
                 shard=name or os.path.basename(shard), **_stat(shard), members=scan_tar(shard))
    with open(path, 'w') as f:
        json.dump(index, f, separators=(',', ':'))
    return path


def read_members(shard: str) -> Tuple[List[Member], str]:
    """The members of ``shard`` and how they were found: ``'sidecar'``, ``'missing'`` (no sidecar:
    scanned) or ``'stale: <why>'`` (a sidecar that does not match the tar: scanned)."""
    path = sidecar_path(shard)
    if not os.path.isfile(path):
        return scan_tar(shard), 'missing'
    try:
        with open(path) as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        return scan_tar(shard), f'stale: {path} is unreadable ({type(e).__name__}: {e})'
    if not isinstance(index, dict) or index.get('format') != SIDECAR_FORMAT \
            or index.get('version') != SIDECAR_VERSION:
        return scan_tar(shard), f'stale: {path} is not a {SIDECAR_FORMAT} v{SIDECAR_VERSION} index'
    now = _stat(shard)
    recorded = {k: index.get(k) for k in now}
    if recorded != now:
        return scan_tar(shard), (f'stale: {path} records size {recorded["size"]} mtime_ns '
                                 f'{recorded["mtime_ns"]}, {shard} has size {now["size"]} '
                                 f'mtime_ns {now["mtime_ns"]}')
    return [(str(n), int(o), int(s)) for n, o, s in index['members']], 'sidecar'


def split_key(name: str) -> Tuple[str, str]:
    """``'dir/abc.cap.json'`` -> ``('dir/abc', 'cap.json')``: webdataset's key / extension split."""
    head, base = os.path.split(name)
    if '.' not in base:
        return name, ''
    stem, ext = base.split('.', 1)
    return (f'{head}/{stem}' if head else stem), ext.lower()


def group_samples(members: Sequence[Member], shard: str) -> Dict[str, Dict[str, Tuple[int, int]]]:
    """``{key: {ext: (offset, size)}}`` in first-appearance order; a repeated member (same key
    and extension twice in the shard) is an error naming the shard and the member."""
    samples: Dict[str, Dict[str, Tuple[int, int]]] = {}
    for name, offset, size in members:
        key, ext = split_key(name)
        exts = samples.setdefault(key, {})
        if ext in exts:
            raise ValueError(f'shard {shard}: member {name!r} appears twice (key {key!r}); '
                             'a sample key must be unique within a shard')
        exts[ext] = (offset, size)
    return samples
