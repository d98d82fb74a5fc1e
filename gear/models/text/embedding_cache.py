"""On-disk cache of a frozen text encoder's caption embeddings, keyed by encoder and caption.

A frozen encoder maps a caption to the same ``(emb (T, C), mask (T,))`` every time, so a run
that sees a caption again (every epoch of a caption dataset, every seed of a study, the demo's
70k captions made from 50 templates) reads it instead of running a 1.7B-parameter model.

- Namespace: ``root/<fingerprint[:16]>/``, the encoder's :meth:`HFTextEncoder.fingerprint`
  (weights, tokenizer, ``max_length``, dtype): another encoder never reads these entries.
  ``meta.json`` there records the encoder's path, family, max_length, dtype and hidden size.
- Key: sha256 of the caption's UTF-8 bytes; the entry is ``<key[:2]>/<key>.npz``.
- Entry: an uncompressed ``.npz`` with ``emb``, the n real-token rows (n, C) float32 (exact for
  float32 and bfloat16 encoders), and ``caption``, the caption's UTF-8 bytes. Captions are right
  padded, so the mask is the first n positions and the padded rows are 0: (T, C) and the mask
  are rebuilt exactly, and a cached batch is bit-identical to an encoded one.
- Writes go through :class:`gear.utils.cache_writer.CacheWriter` (a temporary file, then a
  rename): concurrent runs and crashes never leave a partial entry. An entry that cannot be read (truncated, CRC mismatch:
  the zip format checks every member), has the wrong shape or dtype, or holds another caption is
  warned about (naming the file), recomputed and rewritten; it never reaches the model and
  never stops training. A failed write (a full disk) warns once and turns writing off.

It costs n * C * 4 bytes per distinct caption (flan-t5-xl, 20 tokens: 160 KiB).
"""
import hashlib
import json
import os
import warnings
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from gear.utils.cache_writer import CacheWriter


def caption_key(caption: str) -> str:
    """sha256 hex digest of the caption's UTF-8 bytes."""
    return hashlib.sha256(caption.encode('utf-8')).hexdigest()


class TextEmbeddingCache:
    """Caption embeddings of any number of encoders under ``root``; see the module docstring.

    Args:
        root (str): the cache directory (the encoder's ``cache_dir``).
    """

    def __init__(self, root: str):
        self.root = str(root)
        self._checked_meta = set()  # namespaces whose meta.json was checked this run
        self.writer = CacheWriter('text embedding cache', 'embeddings are still computed',
                                  lambda msg: warnings.warn(msg, RuntimeWarning))
        self.hits = 0  # captions read since construction
        self.misses = 0  # captions encoded

    def namespace(self, encoder) -> str:
        """The directory of ``encoder``'s entries."""
        return os.path.join(self.root, encoder.fingerprint()[:16])

    def entry_path(self, encoder, caption: str) -> str:
        key = caption_key(caption)
        return os.path.join(self.namespace(encoder), key[:2], f'{key}.npz')

    def lookup(self, encoder, captions: Sequence[str]) -> Tuple[Tensor, Tensor]:
        """Captions -> ``(emb (B, T, C) float32, mask (B, T) bool)`` on the encoder's device:
        read where cached, ``encoder.encode`` the misses in one batch and store them."""
        ns = self.namespace(encoder)
        self._check_meta(ns, encoder)
        T, C = encoder.max_length, encoder.feature_dim
        paths = [self.entry_path(encoder, c) for c in captions]
        found: Dict[int, np.ndarray] = {}
        for i, (caption, path) in enumerate(zip(captions, paths)):
            rows = self._read(path, caption, T, C) if os.path.exists(path) else None
            if rows is not None:
                found[i] = rows
        missing = [i for i in range(len(captions)) if i not in found]
        emb = torch.zeros(len(captions), T, C)  # (B, T, C) float32; padded rows stay 0
        mask = torch.zeros(len(captions), T, dtype=torch.bool)  # (B, T)
        for i, rows in found.items():
            emb[i, :len(rows)] = torch.from_numpy(rows)  # (n, C)
            mask[i, :len(rows)] = True
        emb, mask = emb.to(encoder.device), mask.to(encoder.device)
        if missing:
            new_emb, new_mask = encoder.encode([captions[i] for i in missing])  # (M, T, C), (M, T)
            emb[missing], mask[missing] = new_emb, new_mask
            stored_emb, stored_mask = new_emb.cpu(), new_mask.cpu()
            for j, i in enumerate(missing):
                self._write_entry(paths[i], captions[i], stored_emb[j], stored_mask[j])
        self.hits += len(found)
        self.misses += len(missing)
        return emb, mask

    # -- entries ----------------------------------------------------------------------------------
    def _read(self, path: str, caption: str, T: int, C: int) -> Optional[np.ndarray]:
        """The (n, C) float32 rows of ``path``, or None (with a warning) if it is not a valid
        entry of ``caption``."""
        try:
            with np.load(path, allow_pickle=False) as f:
                rows, text = f['emb'], f['caption']
            if text.dtype != np.uint8 or text.tobytes() != caption.encode('utf-8'):
                raise ValueError('it holds another caption')
            if (rows.dtype != np.float32 or rows.ndim != 2 or rows.shape[1] != C
                    or rows.shape[0] > T):
                raise ValueError(f'it holds {rows.dtype} {list(rows.shape)}, expected float32 '
                                 f'(n <= {T}, {C})')
        except Exception as e:  # any unreadable entry: recompute, never crash a run
            warnings.warn(f'text embedding cache: ignoring {path} ({e!r}); recomputing and '
                          'rewriting it', RuntimeWarning)
            return None
        return rows

    def _write_entry(self, path: str, caption: str, emb: Tensor, mask: Tensor) -> None:
        """Store one caption's real-token rows; ``emb`` (T, C), ``mask`` (T,) a prefix."""
        n = int(mask.sum())
        if not bool(mask[:n].all()):  # not right padded: cannot be rebuilt from n alone
            return
        rows = emb[:n].to(torch.float32).numpy()  # (n, C)
        text = np.frombuffer(caption.encode('utf-8'), dtype=np.uint8)
        self.writer.write(path, lambda f: np.savez(f, emb=rows, caption=text))

    # -- meta.json --------------------------------------------------------------------------------
    def _check_meta(self, ns: str, encoder) -> None:
        """Write ``meta.json`` if it is missing, unreadable or describes another encoder."""
        if ns in self._checked_meta:
            return
        self._checked_meta.add(ns)
        meta = encoder.describe()
        path = os.path.join(ns, 'meta.json')
        if os.path.exists(path):
            try:
                with open(path) as f:
                    if json.load(f) == meta:
                        return
                reason = 'it describes another encoder'
            except (OSError, ValueError) as e:
                reason = repr(e)
            warnings.warn(f'text embedding cache: rewriting {path} ({reason})', RuntimeWarning)
        self.writer.write(path, lambda f: f.write(json.dumps(meta, indent=1).encode()))
