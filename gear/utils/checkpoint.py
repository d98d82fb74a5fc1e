"""Checkpoint I/O: atomic writes, strict loading with errors that name the keys at fault.

Two kinds of file:
- *training checkpoints* (mmengine's format: meta, state_dict, optimizer, schedulers, message
  hub, RNG state), written by the runner into a work dir and read back by ``--resume``;
- *weights files* (``{'schema_version', 'arch', 'state_dict'}``): an unwrapped state dict, as
  released in the model zoo and produced by ``tools/model_converters``.
Both are written atomically: to a temporary file in the same directory, flushed and fsynced,
then renamed, so a crash never leaves a half-written file under the final name. A write that
fails (a full disk, a quota, an I/O error) removes its temporary file and raises
:class:`FileWriteError`, an ``OSError`` with the same ``errno`` whose message names the file:
``[Errno 28] no space left on device while writing W/iter_20.pth``; an earlier file under that
name is left as it was.
"""
import contextlib
import errno as errno_names
import hashlib
import io
import os
import os.path as osp
import re
import tempfile
from typing import Any, Dict, Iterable, Optional

import torch
from torch import nn

SCHEMA_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or does not match the model."""


class FileWriteError(OSError):
    """Writing the file ``path`` failed (``errno`` as the OS gave it); nothing was left under
    that name, and a file that was there before is unchanged."""
    path: str = ''


def write_error(exc: OSError, path: str) -> FileWriteError:
    """``exc`` as a :class:`FileWriteError` naming ``path``: ``[Errno 28] no space left on
    device while writing PATH (ENOSPC)``."""
    reason = (exc.strerror or str(exc) or type(exc).__name__).rstrip('.')
    reason = reason[:1].lower() + reason[1:]
    code = errno_names.errorcode.get(exc.errno) if exc.errno is not None else None
    error = FileWriteError(exc.errno, f'{reason} while writing {path}'
                           + (f' ({code})' if code else ''))
    error.path = path
    return error


@contextlib.contextmanager
def atomic_open(path: str, sync: bool = True):
    """Open a temporary file beside ``path`` for binary writing; rename it to ``path`` on success.
    ``sync=False`` skips the fsync: for cache entries, which are checked when read, not for
    checkpoints.

    Raises:
        FileWriteError: If creating, writing, syncing or renaming the file fails; the temporary
            file is removed first.
    """
    directory = osp.dirname(osp.abspath(path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=directory)
        with os.fdopen(fd, 'wb') as f:
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints are meant to be shared
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and osp.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and not isinstance(e, FileWriteError):
            raise write_error(e, path) from e
        raise


def atomic_write_bytes(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as f:
        f.write(data)


class _KeepsWriteErrors:
    """A binary file whose failed ``write`` is remembered: torch's zip writer turns an
    ``OSError`` from ``write`` (ENOSPC) into ``RuntimeError('unexpected pos ...')``."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` that never leaves a partial file at ``path``; a failed write raises
    :class:`FileWriteError` (with its errno), not torch's ``unexpected pos``."""
    with atomic_open(path) as f:
        sink = _KeepsWriteErrors(f)
        try:
            torch.save(obj, sink)
        except RuntimeError:
            if sink.error is not None:
                raise sink.error
            raise


def load_file(path: str, map_location='cpu', weights_only: bool = True) -> Dict[str, Any]:
    """``torch.load`` with an error that names the file when it is missing or unreadable.

    ``weights_only=False`` is only for training checkpoints this project wrote itself (they
    pickle mmengine's message hub); released weights are always read with ``weights_only=True``.
    """
    if not osp.isfile(path):
        raise CheckpointError(f'checkpoint not found: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as e:  # truncated zip, wrong format, pickle error
        raise CheckpointError(f'cannot read checkpoint {path}: {type(e).__name__}: {e}') from e


def mismatch_report(module: nn.Module, state_dict: Dict[str, torch.Tensor],
                    limit: int = 5) -> Optional[str]:
    """Describe how ``state_dict`` fails to match ``module`` (None when it matches)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}'
              for k, v in own.items()
              if k in state_dict and hasattr(state_dict[k], 'shape')
              and tuple(state_dict[k].shape) != tuple(v.shape)]
    parts = []
    for name, keys in (('missing keys', missing), ('unexpected keys', unexpected),
                       ('shape mismatches', shapes)):
        if keys:
            more = f' (and {len(keys) - limit} more)' if len(keys) > limit else ''
            parts.append(f'{len(keys)} {name}: {", ".join(keys[:limit])}{more}')
    return '; '.join(parts) or None


def load_state_dict_strict(module: nn.Module, state_dict: Dict[str, torch.Tensor],
                           source: str = 'checkpoint') -> None:
    """Load strictly; on mismatch raise ``CheckpointError`` naming the source and the first keys."""
    report = mismatch_report(module, state_dict)
    if report is not None:
        raise CheckpointError(f'{source} does not match {type(module).__name__}: {report}')
    module.load_state_dict(state_dict, strict=True)


def strip_prefixes(state_dict: Dict[str, Any], prefixes: Iterable[str] = ('module.', '_orig_mod.')):
    """Remove wrapper prefixes (DDP ``module.``, ``torch.compile`` ``_orig_mod.``) from keys."""
    pattern = re.compile('^(' + '|'.join(re.escape(p) for p in prefixes) + ')+')
    return {pattern.sub('', k): v for k, v in state_dict.items()}


def save_weights(state_dict: Dict[str, torch.Tensor], path: str, arch: Optional[dict] = None) -> None:
    """Write a weights file: unwrapped state dict + schema version + arch kwargs (atomic)."""
    atomic_torch_save(dict(schema_version=SCHEMA_VERSION, arch=arch or {},
                           state_dict={k: v.detach().cpu() for k, v in state_dict.items()}), path)


def load_weights(path: str) -> Dict[str, Any]:
    """Read a weights file written by :func:`save_weights` (weights_only, schema checked)."""
    ckpt = load_file(path, weights_only=True)
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt:
        raise CheckpointError(f'{path} is not a gear weights file (no "state_dict" key)')
    version = ckpt.get('schema_version')
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f'{path} has schema_version {version!r}; this gear reads {SCHEMA_VERSION}')
    return ckpt


def file_sha256(path: str, chunk_size: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks (released files are named by its first 8 digits)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk_size), b''):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(state_dict: Dict[str, Any]) -> str:
    """Hex sha256 of a state dict's values: per entry in name order, its name, dtype, shape and
    raw bytes. Equal weights give equal hashes whatever file, format or device they came from
    (a file's hash changes with its container), so it names the weights actually loaded: the
    frozen tokenizer that pre-extracted codes belong to (gear/datasets/codes.py)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        value = state_dict[name]
        if not isinstance(value, torch.Tensor):  # e.g. an _extra_state entry
            digest.update(f'{name}|{value!r}\n'.encode())
            continue
        t = value.detach().to('cpu').contiguous()
        digest.update(f'{name}|{t.dtype}|{tuple(t.shape)}\n'.encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_hashed_weights(state_dict: Dict[str, torch.Tensor], dst: str,
                        arch: Optional[dict] = None, extra: Optional[dict] = None) -> str:
    """Write a weights file named as released files are: ``{dst stem}-{sha256[:8]}{ext}``.

    The bytes are serialised once, hashed, and written atomically under the final name.
    ``extra``: more top-level entries (plain containers and strings, e.g. the model zoo's
    ``source``). Returns the path written.
    """
    buffer = io.BytesIO()
    torch.save(dict(extra or {}, schema_version=SCHEMA_VERSION, arch=arch or {},
                    state_dict={k: v.detach().cpu().contiguous() for k, v in state_dict.items()}),
               buffer)
    data = buffer.getvalue()
    stem, ext = osp.splitext(dst)
    out = f'{stem}-{hashlib.sha256(data).hexdigest()[:8]}{ext or ".pth"}'
    atomic_write_bytes(data, out)
    return out
