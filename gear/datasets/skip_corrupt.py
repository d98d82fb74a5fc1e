"""The folder datasets' opt-in ``skip_corrupt`` policy: skip unreadable image files, count, stop.

Without it (``skip_corrupt=None``, the default) the first unreadable file is an error naming it:
an empty file when the dataset is built, any other when its item is first read. With
``skip_corrupt=dict(max_files=N)``:

- an empty (0-byte) file found when the dataset is built is dropped from its samples;
- an item whose file raises :class:`~.transforms.UnreadableImageError` when it is read gives
  the next item that reads (index + 1, + 2, ..., wrapping around) instead. The replacement
  depends on the index alone, not on an RNG, so a resumed run and any number of DataLoader
  workers see the same samples; the failed read (the pipeline's first step) draws nothing from
  the torch RNG, so the replacement's random crop / flip are those the corrupt item would have
  had;
- each skip is logged as a warning naming the file, the item and the count so far;
- the count is of *distinct* files (a file met again in a later epoch is skipped and logged
  again, not counted again), kept *per dataset copy*: the main process's dataset, and the copy
  in each DataLoader worker process (which starts from the count at construction). A copy that
  has met more than ``N`` distinct unreadable files raises ``RuntimeError`` naming the count,
  the limit and the last file. A run with W workers on each of R ranks can therefore skip at
  most ``W * R * N`` distinct files in all without stopping, and stops as soon as one copy
  meets its ``N + 1``-th (with ``num_workers=0`` the copy is the rank's main process's). The
  count lives in memory: a resumed run, or the new workers of an epoch without
  ``persistent_workers``, count again from the construction-time count.
"""
import logging
import os
from typing import Dict, Iterable, List, Optional, Tuple

from mmengine.logging import print_log

_FORM = 'give skip_corrupt=dict(max_files=N) (N >= 0: the most unreadable files to skip) or None'


def skip_corrupt_error(value) -> Optional[str]:
    """What is wrong with a ``skip_corrupt`` value, as ``'skip_corrupt[.key]: ...'``, or None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return f'skip_corrupt: {value!r}; {_FORM}'
    unknown = sorted(set(value) - {'max_files'})
    if unknown:
        return f'skip_corrupt.{unknown[0]}: not a key of skip_corrupt; {_FORM}'
    if 'max_files' not in value:
        return f'skip_corrupt.max_files: missing; {_FORM}'
    n = value['max_files']
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        return f'skip_corrupt.max_files: {n!r}; {_FORM}'
    return None


def _where() -> str:
    """This dataset copy's process: the main one or a DataLoader worker."""
    import torch.utils.data
    info = torch.utils.data.get_worker_info()
    if info is None:
        return f'the main process (pid {os.getpid()})'
    return f'DataLoader worker {info.id} of {info.num_workers} (pid {os.getpid()})'


class CorruptFiles:
    """The distinct unreadable files one dataset copy has skipped, and the limit on them.

    Args:
        owner: the dataset, named in messages (e.g. ``'ImageNetFolder(data/imagenet/train)'``).
        skip_corrupt: the dataset's ``skip_corrupt`` config (checked by
            :func:`skip_corrupt_error`).
    """

    def __init__(self, owner: str, skip_corrupt: dict):
        error = skip_corrupt_error(skip_corrupt)
        if error:
            raise ValueError(f'{owner}: {error}')
        self.owner, self.max_files = owner, int(skip_corrupt['max_files'])
        self.files: Dict[str, None] = {}  # an ordered set: at most max_files + 1 paths

    def __len__(self) -> int:
        return len(self.files)

    def skip(self, path: str, why: str, what: str) -> None:
        """Log that ``path`` is skipped and count it; raise above the limit.

        Args:
            path: the file, counted once however often it is met.
            why: the reason, naming the file (e.g. the ``UnreadableImageError`` message).
            what: the item, e.g. ``'item 7 (asked for item 6)'``.
        """
        new = path not in self.files
        self.files[path] = None
        count = len(self.files)
        print_log(f'{self.owner}: skip_corrupt skipped {what}: {why}; '
                  f'{count} distinct unreadable file(s) skipped by the dataset copy in '
                  f'{_where()}{"" if new else " (this one counted before)"}, limit '
                  f'skip_corrupt.max_files={self.max_files}', logger='current',
                  level=logging.WARNING)
        if count > self.max_files:
            raise RuntimeError(
                f'{self.owner}: {count} distinct unreadable image files skipped, more than '
                f'skip_corrupt.max_files={self.max_files} (counted per dataset copy; this '
                f'copy is in {_where()}); the last: {why}')

    def drop_empty(self, samples: Iterable[Tuple[str, int]],
                   empty: Iterable[str]) -> List[Tuple[str, int]]:
        """``samples`` without the ``empty`` files, each skipped (logged and counted)."""
        empty = set(empty)
        for path in sorted(empty):
            self.skip(path, f'{path} is empty (0 bytes)',
                      'an empty file when the dataset was built')
        return [s for s in samples if s[0] not in empty]
