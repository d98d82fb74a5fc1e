"""Checkpoint rotation that removes the oldest checkpoint only once the new one is written.

mmengine's ``CheckpointHook._save_checkpoint_with_step`` deletes the oldest kept checkpoint
(``max_keep_ckpts``) *before* it asks the runner to write the new one. A save that then fails
(a non-finite state that ``GearRunner.save_checkpoint`` refuses, a full disk, a crash) would
leave the work dir with one complete checkpoint fewer and none newer. ``GearRunner`` wraps
each ``CheckpointHook``'s file backend in a :class:`GuardedBackend` after ``before_train``:
its ``remove`` / ``rmtree`` are recorded in :class:`DeferredRemovals`, which the runner carries
out after a checkpoint is written; a failed save leaves them undone.
"""
from typing import Any, Callable, List, Tuple


class DeferredRemovals:
    """Removals recorded by the guarded backends, carried out by :meth:`commit`."""

    def __init__(self):
        self._pending: List[Tuple[Callable[[Any], None], Any]] = []

    def guard(self, backend) -> 'GuardedBackend':
        return backend if isinstance(backend, GuardedBackend) else GuardedBackend(backend, self)

    def defer(self, remove: Callable[[Any], None], path) -> None:
        self._pending.append((remove, path))

    def commit(self) -> None:
        """Carry out the recorded removals (after a checkpoint was written)."""
        pending, self._pending = self._pending, []
        for remove, path in pending:
            remove(path)


class GuardedBackend:
    """An mmengine file backend whose ``remove`` and ``rmtree`` wait for :meth:`commit`."""

    def __init__(self, backend, removals: DeferredRemovals):
        self._backend, self._removals = backend, removals

    def remove(self, filepath) -> None:
        self._removals.defer(self._backend.remove, filepath)

    def rmtree(self, dir_path) -> None:
        self._removals.defer(self._backend.rmtree, dir_path)

    def __getattr__(self, name: str):
        return getattr(self._backend, name)
