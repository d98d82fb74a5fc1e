"""A disk that fills up, for tests/engine/test_disk_full.py (imported through ``custom_imports``).

``FullDiskBackend`` is gear's ``AtomicLocalBackend`` (the training checkpoints' and
``last_checkpoint``'s writer: a temporary file, fsync, rename) on real files, except that while
the ``nth`` file named ``full_at`` is written the disk has ``free_bytes`` left: its file object
takes that many more bytes, then its ``write`` raises ``OSError(ENOSPC)`` as write(2) does on a
full disk. A run picks it with ``default_hooks.checkpoint.backend_args``::

    backend_args=dict(backend='gear_test_full_disk', full_at='iter_4.pth', nth=1,
                      free_bytes=1 << 20)
"""
import contextlib
import errno
import os
import os.path as osp
import sys

from mmengine.fileio import register_backend

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from gear.engine.runner import AtomicLocalBackend  # noqa: E402

BACKEND = 'gear_test_full_disk'


class _FileOnAFullDisk:
    """A real binary file that takes ``free`` more bytes, then fails with ENOSPC."""

    def __init__(self, f, free: int):
        self.f, self.free = f, free

    def write(self, data) -> int:
        data = memoryview(data).cast('B')
        taken = min(len(data), self.free)
        self.f.write(data[:taken])
        self.free -= taken
        if taken < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return taken

    def __getattr__(self, name):
        return getattr(self.f, name)


class FullDiskBackend(AtomicLocalBackend):
    """``AtomicLocalBackend`` on a disk that is full while the ``nth`` ``full_at`` is written.

    Args:
        full_at (str): The base name of the file during whose write the disk fills up.
        nth (int): Which write of that name (1: the first).
        free_bytes (int): The bytes of that write the disk still takes.
    """

    seen = {}  # base name -> writes so far in this process (mmengine makes a backend per save)

    def __init__(self, full_at: str, nth: int = 1, free_bytes: int = 0):
        super().__init__()
        self.full_at, self.nth, self.free_bytes = full_at, nth, free_bytes

    @contextlib.contextmanager
    def open_atomic(self, path: str):
        with super().open_atomic(path) as f:
            name = osp.basename(path)
            self.seen[name] = self.seen.get(name, 0) + 1
            if name == self.full_at and self.seen[name] == self.nth:
                yield _FileOnAFullDisk(f, self.free_bytes)
            else:
                yield f


register_backend(BACKEND, FullDiskBackend, force=True)
