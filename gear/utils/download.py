"""Download a model-zoo file, verify it, cache it: never leave a partial or corrupt file behind.

- Hugging Face entries go through ``huggingface_hub.hf_hub_download`` (its cache layout under
  ``{cache}/hub``, ``revision=`` pinning, its resumable ``.incomplete`` blobs); ``$HF_ENDPOINT``
  and ``$HF_HUB_OFFLINE`` are read at each call (huggingface_hub reads them once, at import).
- URL entries go through ``urllib``: streamed to a temporary file beside the final path, its
  length checked against ``Content-Length``, then atomically renamed to
  ``{cache}/downloads/{name}/{filename}``.
Either way the sha256 (and size) the index gives is checked before the path is returned; a file
that fails is deleted (the hub's cached blob too) and ``DownloadError`` names the entry, where
it came from and why. ``{cache}`` is ``$GEAR_CACHE`` or ``~/.cache/gear``.
"""
import contextlib
import hashlib
import logging
import os
import os.path as osp
import shutil
import tempfile
import urllib.error
import urllib.request
from typing import Iterator, Optional

logger = logging.getLogger(__name__)
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A zoo file could not be downloaded or failed verification (nothing is left in the cache)."""


def cache_dir() -> str:
    """``$GEAR_CACHE``, else ``~/.cache/gear``."""
    return osp.expanduser(os.environ.get('GEAR_CACHE') or osp.join('~', '.cache', 'gear'))


def sha256_of(path: str) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: str, sha256: Optional[str], size: Optional[int], what: str) -> None:
    """Raise ``DownloadError`` naming ``what`` when ``path``'s size or sha256 differ from the
    expected ones (None: not checked)."""
    actual_size = osp.getsize(path)
    if size is not None and actual_size != int(size):
        raise DownloadError(f'{what}: size mismatch: {path} has {actual_size} bytes, the index '
                            f'says {size}')
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256:
            raise DownloadError(f'{what}: checksum mismatch: {path} has sha256 {actual}, the '
                                f'index says {sha256}')
    else:
        logger.warning('%s: the index has no sha256, so %s is not verified', what, path)


def _offline_hint(entry) -> str:
    url = entry.url or ('https://huggingface.co/{repo}/resolve/{revision}/{filename}'
                        .format(**entry.hub))
    return (f'If this machine is offline, download {entry.filename} from {url} elsewhere '
            f'and pass its local path instead of {entry.name!r} (e.g. '
            f"load_tokenizer('/path/to/{entry.filename}'))")


def download_url(url: str, dest: str, sha256: Optional[str] = None, size: Optional[int] = None,
                 what: str = 'download', timeout: float = 60.0) -> str:
    """Download ``url`` to ``dest`` (atomic; verified), unless a verified copy is there already.

    Raises:
        DownloadError: network error, HTTP error (404, ...), a body shorter than its
            ``Content-Length``, or a size / checksum mismatch; ``dest`` and the temporary file
            are removed.
    """
    if osp.isfile(dest):
        try:
            verify_file(dest, sha256, size, what)
            return dest
        except DownloadError as e:
            logger.warning('%s; downloading it again', e)
            os.remove(dest)
    with _staged(dest) as tmp:
        with open(tmp, 'wb') as f:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    expected = response.headers.get('Content-Length')
                    received = 0
                    while True:
                        block = response.read(CHUNK)
                        if not block:
                            break
                        f.write(block)
                        received += len(block)
            except urllib.error.HTTPError as e:
                raise DownloadError(f'{what}: {url} answered HTTP {e.code} {e.reason}') from e
            except (urllib.error.URLError, OSError) as e:  # no network, refused, reset, truncated
                cause = getattr(e, 'reason', e)
                raise DownloadError(f'{what}: cannot download {url}: {type(e).__name__}: '
                                    f'{cause}') from e
            if expected is not None and received != int(expected):
                raise DownloadError(f'{what}: truncated transfer from {url}: received {received} '
                                    f'of {expected} bytes')
            f.flush()
            os.fsync(f.fileno())
        verify_file(tmp, sha256, size, what)
    return dest


def _remove_hub_file(path: str) -> None:
    """Delete a file hf_hub_download returned: the snapshot link and the blob it points to."""
    blob = osp.realpath(path)
    for p in {path, blob}:
        if osp.lexists(p):
            os.remove(p)


def download_hub(repo: str, filename: str, revision: str = 'main', sha256: Optional[str] = None,
                 size: Optional[int] = None, what: str = 'download') -> str:
    """``hf_hub_download`` into ``{cache}/hub``, then verified; a file that fails is removed.

    Raises:
        DownloadError: offline (``HF_HUB_OFFLINE=1`` or no connection) with no cached copy,
            404, truncated transfer, or a size / checksum mismatch.
    """
    from huggingface_hub import hf_hub_download  # imported on use: it is slow to import
    offline = os.environ.get('HF_HUB_OFFLINE', '').strip().lower() in ('1', 'true', 'yes', 'on')
    try:
        path = hf_hub_download(repo_id=repo, filename=filename, revision=revision,
                               cache_dir=osp.join(cache_dir(), 'hub'),
                               endpoint=os.environ.get('HF_ENDPOINT') or None,
                               local_files_only=offline)
    except Exception as e:  # LocalEntryNotFoundError, HTTP errors, connection errors, ...
        mode = ' (HF_HUB_OFFLINE is set)' if offline else ''
        raise DownloadError(f'{what}: cannot download {filename} from the Hugging Face repo '
                            f'{repo} at revision {revision}{mode}: {type(e).__name__}: {e}') from e
    try:
        verify_file(path, sha256, size, what)
    except DownloadError:
        _remove_hub_file(path)
        raise
    return path


def fetch_entry(entry) -> str:
    """The local path of a zoo entry's released file (``gear.utils.model_index.ZooEntry``),
    downloaded and verified if not cached yet.

    Raises:
        DownloadError: as ``download_hub`` / ``download_url``, with how to pass a local file.
    """
    what = f'model-zoo entry {entry.name!r} ({entry.where})'
    try:
        if entry.hub:
            return download_hub(entry.hub['repo'], entry.hub['filename'], entry.hub['revision'],
                                entry.sha256, entry.size, what)
        dest = osp.join(cache_dir(), 'downloads', entry.name, entry.filename)
        return download_url(entry.url, dest, entry.sha256, entry.size, what)
    except DownloadError as e:
        raise DownloadError(f'{e}. {_offline_hint(entry)}') from e.__cause__


def copy_to(path: str, dest_dir: str) -> str:
    """Copy ``path`` into ``dest_dir`` atomically (``tools/download.py --dest``); returns the copy."""
    out = osp.join(dest_dir, osp.basename(path))
    with _staged(out) as tmp:
        shutil.copyfile(path, tmp)
    return out


@contextlib.contextmanager
def _staged(dest: str) -> Iterator[str]:
    """A temp file beside ``dest``: moved onto ``dest`` (mode 644) when the block succeeds,
    removed when it raises, so ``dest`` is never half-written."""
    folder = osp.dirname(osp.abspath(dest))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(dest)}.', suffix='.part', dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
