"""Best-effort atomic writes for the on-disk caches (teacher features, caption embeddings).

An entry goes through :func:`gear.utils.checkpoint.atomic_open` (a temporary file beside it, then
a rename; no fsync, as entries are checked when read), so a crash or a concurrent run never
leaves a partial entry. A cache is an optimisation: the first failed write (a full disk, a
read-only or missing directory) is reported once through ``warn``, with the file and the reason,
and turns writing off for the rest of the run; training goes on, uncached.
"""
from typing import BinaryIO, Callable

from .checkpoint import atomic_open


class CacheWriter:
    """Atomic writes of one cache until the first failure.

    Args:
        what (str): The cache's name in the warning, e.g. ``'teacher feature cache'``.
        consequence (str): What still happens, e.g. ``'features are still computed'``.
        warn (Callable[[str], None]): Where the one warning goes.
    """

    def __init__(self, what: str, consequence: str, warn: Callable[[str], None]):
        self.what, self.consequence, self.warn = what, consequence, warn
        self.failed = False

    def write(self, path: str, write: Callable[[BinaryIO], object]) -> bool:
        """``write(f)`` into ``path`` atomically; False (having warned once) if it failed now or
        an earlier write did."""
        if self.failed:
            return False
        try:
            with atomic_open(path, sync=False) as f:
                write(f)
        except OSError as e:  # atomic_open removed its temporary file
            self.failed = True
            self.warn(f'{self.what}: cannot write {path} ({e}); caching stops for this run, '
                      f'{self.consequence}')
            return False
        return True
