"""The on-disk layout of pre-extracted codes: what ``tools/extract_codes.py`` writes
(``gear.apis.extract_codes``) and ``CodesDataset`` reads (``codes.py``).

A codes directory ``root`` holds the N items of a source dataset, in its order, as V views each:

    meta.json           the arrays, and the keys they belong to (below)
    indices.npy         (N, V, L) int16 (int32 above 32767 codes): the frozen tokenizer's hard
                        tokens, L = h * w, row-major over its (h, w) grid
    labels.npy          (N,) int64
    teacher_{name}.npy  (N, V, C, h', w') float32 (``--feature-dtype float16`` halves the disk,
                        and the values are then rounded): each teacher's feature map as its
                        network gives it (``teacher.feature_map(x)``), before the resampling to
                        the token grid and the target normalisation, which the reading model
                        applies (``teacher.targets_from_map``, the same ops as ``teacher(x)``).
                        EfficientNet-Lite0 at 128 px: a 4x4 map for an 8x8 grid, 4x less disk

Views (``meta['views']``): ``orig`` and ``flip`` (the horizontal mirror), or with ten-crop
LlamaGen's ten crops of the image prepared at ``crop_range`` times the resolution (four corners
and the centre, then the same of the mirror; ``crop_*`` and ``flip_crop_*``).

Keys, recorded in ``meta.json`` and compared with whatever reads the codes:

- ``tokenizer_sha256``: ``state_dict_sha256`` (gear/utils/checkpoint.py) of the tokenizer the
  extracting model actually loaded, with ``tokenizer_source`` saying from where. A run whose
  tokenizer hashes otherwise refuses the codes, naming both hashes and both sources
  (:func:`check_model`, run by ``CodesCheckHook`` when training starts).
- ``dataset`` (the source dataset config, its pipeline included: the preprocessing) and
  ``views``: ``CodesDataset(source=...)`` must give the same config (:func:`check_source`
  names the first key that differs).
- ``teachers``: each teacher's fingerprint (class, settings and weights:
  ``gear.models.align.feature_cache.module_fingerprint``), compared with the model's teachers.

Atomic and resumable: an extraction writes into ``{root}.partial/``. Rank 0 preallocates the
arrays there (sparse files); the items are cut into chunks of ``chunk_size`` consecutive items,
each encoded as one batch and written into its rows by whichever rank holds it, then marked
done by a file ``done/{chunk}`` written after the rows are flushed. A rerun (any number of
ranks) redoes exactly the chunks without a marker, and the directory is renamed to ``root``
once every chunk is done. ``root`` therefore exists only complete; a half-written array is
never under that name.
"""
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional

import numpy as np

from gear.utils.checkpoint import atomic_write_bytes

FORMAT, VERSION = 'gear-codes', 2  # 2: teacher maps before resampling (1: targets)
META = 'meta.json'
PARTIAL_SUFFIX = '.partial'
DONE_DIR = 'done'
FEATURE_DTYPES = ('float32', 'float16')


class CodesError(ValueError):
    """Codes that are missing, incomplete, unreadable, or not those of the configured
    tokenizer, dataset or teachers; the message names the path and the key."""


def partial_dir(root: str) -> str:
    return osp.normpath(root) + PARTIAL_SUFFIX


def canonical(obj: Any) -> Any:
    """``obj`` as JSON would store it (tuples as lists, config dicts as dicts): comparable."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def config_diff(stored: Any, given: Any, prefix: str = '') -> List[str]:
    """Dotted keys where two configs differ, as ``'key: stored vs given'``."""
    if isinstance(stored, dict) and isinstance(given, dict):
        out = []
        for key in sorted(set(stored) | set(given)):
            where = f'{prefix}.{key}' if prefix else str(key)
            if key not in given:
                out.append(f'{where}: {stored[key]!r} vs (absent)')
            elif key not in stored:
                out.append(f'{where}: (absent) vs {given[key]!r}')
            else:
                out += config_diff(stored[key], given[key], where)
        return out
    if isinstance(stored, list) and isinstance(given, list) and len(stored) == len(given):
        return [d for i, (a, b) in enumerate(zip(stored, given))
                for d in config_diff(a, b, f'{prefix}[{i}]')]
    return [] if stored == given else [f'{prefix or "(value)"}: {stored!r} vs {given!r}']


def index_dtype(codebook_size: int) -> str:
    return 'int16' if codebook_size <= np.iinfo(np.int16).max + 1 else 'int32'


def array_specs(meta: dict) -> Dict[str, dict]:
    """``{array name: dict(file, shape, dtype)}``: ``indices``, ``labels``, ``teacher/{name}``."""
    specs = dict(indices=meta['indices'], labels=meta['labels'])
    specs.update({f'teacher/{n}': t for n, t in meta['teachers'].items()})
    return specs


def read_meta(directory: str) -> dict:
    path = osp.join(directory, META)
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise CodesError(f'cannot read {path}: {e}') from e
    if not isinstance(meta, dict) or meta.get('format') != FORMAT:
        raise CodesError(f'{path} is not a gear codes meta file (no "format": "{FORMAT}")')
    if meta.get('version') != VERSION:
        raise CodesError(f'{path} has codes format version {meta.get("version")!r}; this gear '
                         f'reads {VERSION}: re-extract with tools/extract_codes.py')
    return meta


def write_meta(directory: str, meta: dict) -> None:
    atomic_write_bytes(json.dumps(meta, indent=1, sort_keys=True).encode(),
                       osp.join(directory, META))


def open_arrays(directory: str, meta: dict, mode: str = 'r') -> Dict[str, np.ndarray]:
    """The memory maps of ``directory`` (``mode`` 'r' or 'r+'), checked against ``meta``."""
    arrays = {}
    for name, spec in array_specs(meta).items():
        path = osp.join(directory, spec['file'])
        try:
            arr = np.load(path, mmap_mode=mode, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CodesError(f'cannot read {path}: {e}') from e
        if list(arr.shape) != list(spec['shape']) or str(arr.dtype) != spec['dtype']:
            raise CodesError(f'{path} holds {arr.dtype} {list(arr.shape)}, {META} says '
                             f'{spec["dtype"]} {spec["shape"]}')
        arrays[name] = arr
    return arrays


def done_chunks(partial: str) -> set:
    """Chunks of a partial extraction whose rows are written (their ``done/`` markers)."""
    folder = osp.join(partial, DONE_DIR)
    if not osp.isdir(folder):
        return set()
    return {int(n) for n in os.listdir(folder) if n.isdigit()}


def mark_done(partial: str, chunk: int) -> None:
    atomic_write_bytes(b'', osp.join(partial, DONE_DIR, f'{chunk:07d}'))


def locate(root: str) -> dict:
    """The meta of the complete codes at ``root``; :class:`CodesError` saying what to run when
    they are missing or only partly extracted."""
    if osp.isfile(osp.join(root, META)):
        return read_meta(root)
    partial = partial_dir(root)
    if osp.isfile(osp.join(partial, META)):
        meta = read_meta(partial)
        raise CodesError(f'codes {root} are incomplete: {partial} holds '
                         f'{len(done_chunks(partial))} of {meta["num_chunks"]} chunks; rerun '
                         'python tools/extract_codes.py CONFIG (the same command) to complete '
                         'them')
    raise CodesError(f'no codes at {root} ({META} not found): extract them first with '
                     'python tools/extract_codes.py CONFIG')


def check_source(meta: dict, source: dict, root: str, where: str = 'source') -> None:
    """The dataset config the codes were extracted from must be ``source``."""
    diff = config_diff(meta['dataset'], canonical(source))
    if diff:
        more = f' (and {len(diff) - 3} more)' if len(diff) > 3 else ''
        raise CodesError(f'codes {root} were extracted from another dataset / preprocessing '
                         f'than {where}: {"; ".join(where + "." + d for d in diff[:3])}{more} '
                         f'(codes {META} vs config); re-extract them or fix {where}')


def check_model(meta: dict, root: str, keys: dict, source: str) -> None:
    """The model reading the codes must have their tokenizer and teachers. ``keys``:
    ``dict(tokenizer_sha256=..., teachers={name: dict(fingerprint=..., repr=...)})`` of the
    model (``FrozenTokenizerAR.codes_keys``); ``source``: where its tokenizer came from."""
    if meta['tokenizer_sha256'] != keys['tokenizer_sha256']:
        raise CodesError(
            f'stale codes: {root} were extracted with the tokenizer of sha256 '
            f'{meta["tokenizer_sha256"]} ({meta.get("tokenizer_source", "?")}), but this run\'s '
            f'tokenizer has sha256 {keys["tokenizer_sha256"]} ({source}); re-extract with '
            'python tools/extract_codes.py CONFIG, or point the codes root elsewhere')
    stored, given = sorted(meta['teachers']), sorted(keys['teachers'])
    if stored != given:
        raise CodesError(f'codes {root} hold the features of teachers {stored}, the model has '
                         f'model.teachers {given}')
    for name in stored:
        a, b = meta['teachers'][name], keys['teachers'][name]
        if a['fingerprint'] != b['fingerprint']:
            raise CodesError(f'codes {root}: model.teachers.{name} has fingerprint '
                             f'{b["fingerprint"]} ({b["repr"]}), the codes were computed by '
                             f'{a["fingerprint"]} ({a["repr"]}); re-extract them')


def describe(meta: Optional[dict]) -> str:
    """One line on a codes meta: items, views, grid, teachers."""
    if not meta:
        return '(none)'
    return (f'{meta["num_items"]} items x {len(meta["views"])} views {meta["views"]}, grid '
            f'{meta["token_grid"]}, {meta["codebook_size"]} codes, teacher maps '
            f'{ {n: t["shape"][2:] for n, t in sorted(meta["teachers"].items())} }, tokenizer '
            f'sha256 {meta["tokenizer_sha256"][:12]}')
