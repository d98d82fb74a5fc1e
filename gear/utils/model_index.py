"""The model zoo's index: read ``model-index.yml`` (OpenMMLab's metafile convention), find entries
by name, and resolve a name or a path to a local checkpoint file.

    model-index.yml                 Import: [configs/tokenizer/metafile.yml, ...]
    configs/*/metafile.yml          Models: [{Name, In Collection, Config, Metadata, Results,
                                              Weights, Source, SHA256}, ...]

``Source`` is ``{Hub: owner/repo, Filename: ..., Revision: ...}`` (downloaded with
``huggingface_hub``) or ``{URL: https://...}`` (plain HTTPS); ``SHA256`` and
``Metadata.Size`` (bytes) are verified when the index has them (null: unknown, not invented).
``Metadata`` holds ``Family`` (vq / lfq / ibq / gpt), ``Stage`` (pretrain / warmup / gear / ar),
``Key`` (the bundle entry read by default, e.g. ``vq_ema``) and, for a GPT, ``Tokenizer`` (the
entry it samples with) and ``Architecture``.

The index is found in the source tree (an editable install or a checkout) or in the installed
package (``gear/.mim/model-index.yml``, copied by ``setup.py``). ``$GEAR_MODEL_INDEX`` adds more
index or metafile paths (``os.pathsep``-separated; e.g. a lab's private zoo, or a test's). Files
are cached under ``$GEAR_CACHE`` (default ``~/.cache/gear``).
"""
import difflib
import functools
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import yaml

from .config_path import PACKAGE_DIR
from .download import cache_dir, fetch_entry  # noqa: F401  (cache_dir: re-exported)

INDEX_FILE = 'model-index.yml'
FAMILIES = ('vq', 'lfq', 'ibq', 'gpt')
STAGES = ('pretrain', 'warmup', 'gear', 'ar')


class ModelIndexError(ValueError):
    """The index itself is malformed (the message names the file and the entry)."""


@dataclass(frozen=True)
class ZooEntry:
    """One released checkpoint of the index.

    Attributes:
        name: unique, lowercase (``gear-vq16``).
        family: ``vq``, ``lfq``, ``ibq`` (tokenizers) or ``gpt`` (AR generators).
        stage: ``pretrain``, ``warmup``, ``gear`` or ``ar``.
        config: the gear config that reproduces or consumes it (relative to the repository).
        hub: ``{'repo', 'filename', 'revision'}`` for a Hugging Face file, else None.
        url: a plain HTTPS URL, else None.
        sha256: hex digest of the released file, None when unknown.
        size: bytes of the released file, None when unknown.
        key: the bundle entry read by default (``vq_ema``, ``model``), None: the converter's choice.
        tokenizer: for a GPT, the tokenizer entry it generates with.
        metadata: the entry's whole ``Metadata`` mapping.
        results: the ``Results`` list (published metrics with their source).
        index_file: the metafile the entry was read from.
    """
    name: str
    family: str
    stage: str
    config: str
    hub: Optional[Dict[str, str]]
    url: Optional[str]
    sha256: Optional[str]
    size: Optional[int]
    key: Optional[str]
    tokenizer: Optional[str]
    metadata: Dict[str, Any] = field(default_factory=dict)
    results: List[Dict[str, Any]] = field(default_factory=list)
    index_file: str = ''

    @property
    def filename(self) -> str:
        """The released file's name (hub filename or the URL's last part)."""
        return self.hub['filename'] if self.hub else self.url.rstrip('/').rsplit('/', 1)[-1]

    @property
    def where(self) -> str:
        """Where the file comes from, for messages: ``hf://repo@revision/filename`` or the URL."""
        if self.hub:
            return f"hf://{self.hub['repo']}@{self.hub['revision']}/{self.hub['filename']}"
        return self.url


def default_index_files() -> List[str]:
    """The shipped ``model-index.yml`` (source tree first, then ``gear/.mim``) plus
    ``$GEAR_MODEL_INDEX``'s paths."""
    files = []
    for root in (osp.dirname(PACKAGE_DIR), osp.join(PACKAGE_DIR, '.mim')):
        if osp.isfile(osp.join(root, INDEX_FILE)):
            files.append(osp.join(root, INDEX_FILE))
            break
    extra = os.environ.get('GEAR_MODEL_INDEX', '')
    files += [p for p in extra.split(os.pathsep) if p]
    return files


def _read_yaml(path: str) -> dict:
    if not osp.isfile(path):
        raise ModelIndexError(f'model index file not found: {path}')
    stat = os.stat(path)
    return _parse_yaml(osp.abspath(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _parse_yaml(path: str, mtime_ns: int, size: int) -> dict:
    """A metafile's content, parsed once per version of the file (never mutated by readers)."""
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ModelIndexError(f'{path}: expected a mapping with Import: or Models:')
    return data


def _metafiles(path: str) -> List[str]:
    """``path`` and, recursively, the metafiles its ``Import:`` names (relative to it)."""
    data = _read_yaml(path)
    out = [path] if 'Models' in data else []
    for rel in data.get('Import') or []:
        out += _metafiles(osp.join(osp.dirname(path), rel))
    return out


def _parse_entry(raw: dict, path: str) -> ZooEntry:
    name = raw.get('Name')
    where = f'{path}: entry {name!r}'
    meta = dict(raw.get('Metadata') or {})
    source = dict(raw.get('Source') or {})
    family, stage = meta.get('Family'), meta.get('Stage')
    if not isinstance(name, str) or name != name.lower() or not name:
        raise ModelIndexError(f'{where}: Name must be a non-empty lowercase string')
    if family not in FAMILIES:
        raise ModelIndexError(f'{where}: Metadata.Family {family!r} is not one of {FAMILIES}')
    if stage not in STAGES:
        raise ModelIndexError(f'{where}: Metadata.Stage {stage!r} is not one of {STAGES}')
    if not raw.get('Config'):
        raise ModelIndexError(f'{where}: no Config')
    hub = url = None
    if 'Hub' in source:
        if not source.get('Filename'):
            raise ModelIndexError(f'{where}: Source.Hub needs Source.Filename')
        hub = dict(repo=source['Hub'], filename=source['Filename'],
                   revision=str(source.get('Revision') or 'main'))
    elif 'URL' in source:
        url = source['URL']
    else:
        raise ModelIndexError(f'{where}: Source needs Hub (+ Filename, Revision) or URL')
    sha256 = raw.get('SHA256')
    if sha256 is not None and (len(str(sha256)) != 64 or not all(
            c in '0123456789abcdef' for c in str(sha256))):
        raise ModelIndexError(f'{where}: SHA256 must be 64 lowercase hex digits or null')
    return ZooEntry(name=name, family=family, stage=stage, config=raw['Config'], hub=hub, url=url,
                    sha256=sha256, size=meta.get('Size'), key=meta.get('Key'),
                    tokenizer=meta.get('Tokenizer'), metadata=meta,
                    results=list(raw.get('Results') or []), index_file=path)


def load_index(index_files: Optional[Sequence[str]] = None) -> Dict[str, ZooEntry]:
    """Every entry of the index, by name.

    Args:
        index_files: ``model-index.yml`` or ``metafile.yml`` paths; None: ``default_index_files()``.

    Raises:
        ModelIndexError: a file is missing or malformed, or two entries share a name.
    """
    entries: Dict[str, ZooEntry] = {}
    for index in default_index_files() if index_files is None else index_files:
        for path in _metafiles(index):
            for raw in _read_yaml(path).get('Models') or []:
                entry = _parse_entry(raw, path)
                if entry.name in entries:
                    raise ModelIndexError(f'{path}: entry {entry.name!r} is already defined in '
                                          f'{entries[entry.name].index_file}')
                entries[entry.name] = entry
    for entry in entries.values():
        if entry.tokenizer is not None and entry.tokenizer not in entries:
            raise ModelIndexError(f'{entry.index_file}: entry {entry.name!r} names the tokenizer '
                                  f'{entry.tokenizer!r}, which is not in the index')
    return entries


def zoo_names() -> List[str]:
    """The names of every entry, sorted."""
    return sorted(load_index())


def find_entry(name: str) -> Optional[ZooEntry]:
    """The entry called ``name`` (case-insensitive), None when the index has none."""
    return load_index().get(name.lower()) if isinstance(name, str) else None


def suggest(name: str, n: int = 3) -> List[str]:
    """Zoo names close to ``name`` (difflib), best first."""
    return difflib.get_close_matches(name.lower(), zoo_names(), n=n, cutoff=0.5)


def unknown_name_error(value: str) -> FileNotFoundError:
    """``FileNotFoundError`` for a value that is neither a file nor a zoo name."""
    close = suggest(value)
    hint = f'; did you mean {", ".join(repr(c) for c in close)}?' if close else ''
    return FileNotFoundError(f'not found: {value!r} is neither an existing file nor a model-zoo '
                             f'name{hint} '
                             '(names: python tools/download.py --list, or model_zoo.md)')


def default_key(name_or_path: str) -> Optional[str]:
    """The bundle key the zoo entry ``name_or_path`` says to read (e.g. ``'vq_ema'``), or None
    (a path, or an entry that leaves the choice to the converter)."""
    if isinstance(name_or_path, str) and osp.exists(name_or_path):
        return None
    entry = find_entry(name_or_path)
    return entry.key if entry is not None else None


def resolve_checkpoint(name_or_path: str) -> str:
    """A local checkpoint file for ``name_or_path``.

    An existing path is returned unchanged; a zoo name is downloaded (checksum and size
    verified where the index has them, cached under ``cache_dir()``) and its local path
    returned.

    Raises:
        FileNotFoundError: neither a file nor a zoo name (with did-you-mean suggestions).
        DownloadError: the download or its verification failed (names the entry, the source
            and the cause; nothing partial is left in the cache).
    """
    if osp.exists(name_or_path):
        return name_or_path
    entry = find_entry(name_or_path)
    if entry is None:
        raise unknown_name_error(name_or_path)
    return fetch_entry(entry)
