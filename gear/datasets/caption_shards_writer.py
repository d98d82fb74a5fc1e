"""Writing image-caption pairs as WebDataset tar shards with sidecar indexes, losing nothing.

:func:`write_caption_shards` stores each sample as ``KEY.<ext>`` (the encoded image bytes, as
given: ``jpg``, ``jpeg``, ``png`` or ``webp``) and ``KEY.json`` (``{"caption": ...}``) with
``webdataset.TarWriter``, ``maxcount`` samples a shard, then writes each shard's sidecar index
``<shard>.idx.json`` (:mod:`.shard_index`), which :class:`~.caption_shards.CaptionShards` reads.

Nothing half-written looks complete: shards and sidecars are written under temporary names
(``<name>.partial``, which a ``*.tar`` glob does not match) and renamed to their final names only
once every sample has been written; an error or interruption in the sample iterator removes the
temporary files and re-raises. Existing shards matching the pattern are refused unless
``overwrite`` (then they are removed at the end, so a shorter rewrite leaves no old shard behind).
Members carry mtime 0, so the same samples give byte-identical shards.
"""
import glob
import json
import os
import re
from typing import Iterable, List, Tuple

from webdataset import TarWriter

from .caption_shards import IMAGE_EXTS
from .shard_index import sidecar_path, write_sidecar

Sample = Tuple[str, bytes, str, str]  # (key, encoded image, image extension, caption)
_FIELD = re.compile(r'%0?\d*d')


def _check_pattern(out_pattern: str) -> str:
    """The glob matching every shard ``out_pattern`` can name (``%06d`` -> ``*``)."""
    if not isinstance(out_pattern, str) or len(_FIELD.findall(out_pattern)) != 1:
        raise ValueError(f'out_pattern must hold one %d field for the shard number, e.g. '
                         f"'out/train-%06d.tar', got {out_pattern!r}")
    if not out_pattern.endswith('.tar'):
        raise ValueError(f"out_pattern must end in '.tar' (uncompressed: CaptionShards reads "
                         f'members at their offsets), got {out_pattern!r}')
    return glob.escape(_FIELD.sub('\0', out_pattern)).replace('\0', '*')


def _check_sample(sample, n: int, seen: set) -> Sample:
    """``sample`` (the ``n``-th) as ``(key, bytes, ext, caption)``; a ``ValueError`` names it."""
    if not isinstance(sample, (tuple, list)) or len(sample) != 4:
        raise ValueError(f'sample {n}: expected (key, image bytes, ext, caption), got '
                         f'{type(sample).__name__}')
    key, image, ext, caption = sample
    if not isinstance(key, str) or not key or key.startswith(('_', '/')) or '..' in key \
            or '.' in os.path.basename(key) or any(c.isspace() for c in key):
        raise ValueError(f'sample {n}: key {key!r} is not usable: give a non-empty str without '
                         "dots or spaces in its base name, not starting with '_' or '/' "
                         '(webdataset splits the member name at the first dot)')
    if key in seen:
        raise ValueError(f'sample {n}: duplicate key {key!r}; keys must be unique')
    ext = ext.lower().lstrip('.') if isinstance(ext, str) else ext
    if ext not in IMAGE_EXTS:
        raise ValueError(f'sample {n} (key {key!r}): image extension {ext!r} is not one of '
                         f'{IMAGE_EXTS}')
    if not isinstance(image, (bytes, bytearray, memoryview)) or len(image) == 0:
        raise ValueError(f'sample {n} (key {key!r}): the image must be non-empty encoded bytes')
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f'sample {n} (key {key!r}): empty caption {caption!r}; every sample '
                         'needs a non-empty str caption')
    seen.add(key)
    return key, bytes(image), ext, caption


def _remove(paths: Iterable[str]) -> None:
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def write_caption_shards(samples: Iterable[Sample], out_pattern: str, maxcount: int = 10000,
                         overwrite: bool = False) -> List[str]:
    """Write ``samples`` as tar shards ``out_pattern % 0, % 1, ...`` plus their sidecar indexes.

    Args:
        samples: ``(key, image bytes, ext, caption)`` tuples; keys unique, captions non-empty.
        out_pattern: shard path with one ``%d`` field, ending in ``.tar``
            (e.g. ``'out/train-%06d.tar'``); its folder is created.
        maxcount: samples per shard (the last shard holds the rest).
        overwrite: replace existing shards matching the pattern (default: refuse).

    Returns:
        The shard paths written, in order.

    Raises:
        ValueError: naming the sample (its position and key): a duplicate or unusable key, an
            empty caption, an empty image or an unknown extension; or no samples at all. Nothing
            is left under a final name when it is raised.
        FileExistsError: shards matching ``out_pattern`` exist and ``overwrite`` is False.
    """
    pattern_glob = _check_pattern(out_pattern)
    if isinstance(maxcount, bool) or not isinstance(maxcount, int) or maxcount < 1:
        raise ValueError(f'maxcount must be a positive int, got {maxcount!r}')
    existing = sorted(glob.glob(pattern_glob))
    if existing and not overwrite:
        raise FileExistsError(f'{len(existing)} shard(s) matching {out_pattern!r} exist '
                              f'({", ".join(existing[:3])}...); remove them, write elsewhere, '
                              'or pass overwrite=True')
    os.makedirs(os.path.dirname(out_pattern) or '.', exist_ok=True)
    parts: List[Tuple[str, str, str]] = []  # (temporary tar, temporary sidecar, final tar)
    seen: set = set()
    writer, count = None, 0

    def finish():
        writer.close()
        tmp_tar, tmp_idx, final = parts[-1]
        write_sidecar(tmp_tar, path=tmp_idx, name=os.path.basename(final))

    try:
        for n, sample in enumerate(samples):
            key, image, ext, caption = _check_sample(sample, n, seen)
            if writer is None or count >= maxcount:
                if writer is not None:
                    finish()
                final = out_pattern % len(parts)
                parts.append((final + '.partial', sidecar_path(final) + '.partial', final))
                writer, count = TarWriter(parts[-1][0], encoder=False, mtime=0), 0
            caption_json = json.dumps({'caption': caption}, ensure_ascii=False).encode('utf-8')
            try:
                writer.write({'__key__': key, ext: image, 'json': caption_json})
            except ValueError as e:  # e.g. a name too long for the tar format
                raise ValueError(f'sample {n} (key {key!r}): cannot write it to '
                                 f'{parts[-1][2]}: {e}') from e
            count += 1
        if writer is None:
            raise ValueError(f'write_caption_shards({out_pattern!r}): no samples to write')
        finish()
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:  # the error that brought us here is the one to report
                pass
        _remove(p for part in parts for p in part[:2])
        raise
    finals = [final for _, _, final in parts]
    _remove(p for old in existing if old not in finals
            for p in (old, sidecar_path(old)))  # overwrite: no old shard left behind
    for tmp_tar, tmp_idx, final in parts:  # sidecar first: a tar is never newer than its index
        os.replace(tmp_idx, sidecar_path(final))
        os.replace(tmp_tar, final)
    return finals
