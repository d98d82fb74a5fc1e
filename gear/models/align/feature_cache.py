"""On-disk cache of a frozen teacher's feature maps, keyed by image content.

A teacher is frozen and deterministic, so its feature map of an image never changes. Runs that
see the same images (the seeds and arms of a study, every validation pass) read the map instead
of recomputing it. On a CPU the EfficientNet-Lite0 teacher at 128 px is about two thirds of a
tiny stage-2 step.

- Key: blake2b of the image as the teacher receives it ((3, H, W) float32 bytes), so an
  augmented view is another entry and nothing depends on dataset indices or data order.
- Namespace: one directory per teacher fingerprint: its class and ``extra_repr``, a hash of its
  parameters and buffers, the device type and the autocast dtype. A teacher with other weights,
  input size or precision never reads another's maps.
- Entry: one ``.npy`` per image holding the network's map before grid resampling, (C, h, w)
  float32 (exact for float32 and bfloat16 maps; ``meta.json`` records the dtype to return).
  Written through :class:`gear.utils.cache_writer.CacheWriter` (a temporary file, then a
  rename), so concurrent runs and crashes never leave a partial entry; a failed write warns once
  and turns writing off. An entry that cannot be read or has the wrong shape is an error naming
  the file.

It costs disk: C * h * w * 4 bytes per image (EfficientNet-Lite0 at 128 px: 80 KiB; DINOv2-B/14
at 224 px: 768 KiB). Use it for small datasets and repeated runs, not for ImageNet-scale training.
"""
import hashlib
import json
import logging
import os
from typing import Callable, Dict, Optional

import numpy as np
import torch
from torch import Tensor, nn

from mmengine.logging import print_log

from gear.utils.cache_writer import CacheWriter

_DTYPES = {'torch.float32': torch.float32, 'torch.bfloat16': torch.bfloat16,
           'torch.float16': torch.float16}


def image_keys(x: Tensor) -> list:
    """(B, 3, H, W) images -> B hex digests of their float32 bytes (shape included)."""
    x = x.detach().to('cpu', torch.float32).contiguous()
    keys = []
    for img in x:  # (3, H, W)
        h = hashlib.blake2b(digest_size=20)
        h.update(str(tuple(img.shape)).encode())
        h.update(img.numpy().tobytes())
        keys.append(h.hexdigest())
    return keys


def module_fingerprint(module: nn.Module) -> str:
    """Hash of a module's class, ``extra_repr`` and every parameter and buffer (names, values)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f'{type(module).__module__}.{type(module).__qualname__}|{module.extra_repr()}'.encode())
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    for name, t in sorted(tensors, key=lambda kv: kv[0]):
        h.update(f'{name}:{t.dtype}:{tuple(t.shape)}'.encode())
        h.update(t.detach().to('cpu').contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class TeacherFeatureCache:
    """Feature maps of one teacher under ``root``; see the module docstring.

    Args:
        root (str): cache directory, shared by any number of teachers and runs.
    """

    def __init__(self, root: str):
        self.root = str(root)
        self._fingerprint: Optional[str] = None
        self._meta: Dict[str, dict] = {}  # namespace dir -> meta
        self.writer = CacheWriter('teacher feature cache', 'features are still computed',
                                  lambda msg: print_log(msg, logger='current',
                                                        level=logging.WARNING))
        self.hits = 0  # images read from the cache since construction
        self.misses = 0  # images computed

    def namespace(self, teacher: nn.Module, x: Tensor) -> str:
        """The directory of ``teacher``'s maps on ``x``'s device under the current autocast."""
        if self._fingerprint is None:
            self._fingerprint = module_fingerprint(teacher)
        device = x.device.type
        amp = (str(torch.get_autocast_dtype(device)).replace('torch.', '')
               if torch.is_autocast_enabled(device) else 'noamp')
        return os.path.join(self.root, f'{type(teacher).__name__}-{self._fingerprint}-{device}-{amp}')

    def lookup(self, teacher: nn.Module, x: Tensor, compute: Callable[[Tensor], Tensor]) -> Tensor:
        """Images (B, 3, H, W) -> maps (B, C, h, w): read where cached, ``compute`` the rest."""
        ns = self.namespace(teacher, x)
        keys = image_keys(x)
        paths = [os.path.join(ns, k[:2], f'{k}.npy') for k in keys]
        meta = self._read_meta(ns)
        found = {i: self._read(p, meta) for i, p in enumerate(paths)
                 if meta is not None and os.path.exists(p)}
        missing = [i for i in range(len(keys)) if i not in found]
        out: Dict[int, Tensor] = {}
        if missing:
            maps = compute(x[missing])  # (M, C, h, w)
            meta = meta or self._write_meta(ns, teacher, maps)
            stored = maps.detach().to('cpu', torch.float32)  # one copy; exact for bf16 / fp16
            for j, i in enumerate(missing):
                out[i] = maps[j]
                self._write(paths[i], stored[j].numpy())
        if found:
            idx = sorted(found)
            read = torch.from_numpy(np.stack([found[i] for i in idx]))  # (F, C, h, w) float32
            out.update(zip(idx, read.to(x.device, _DTYPES[meta['dtype']])))  # one copy
        self.hits += len(found)
        self.misses += len(missing)
        return torch.stack([out[i] for i in range(len(keys))])  # (B, C, h, w)

    # -- files ------------------------------------------------------------------------------------
    def _read_meta(self, ns: str) -> Optional[dict]:
        if ns in self._meta:
            return self._meta[ns]
        path = os.path.join(ns, 'meta.json')
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                meta = json.load(f)
            if not isinstance(meta, dict) or meta.get('dtype') not in _DTYPES or 'shape' not in meta:
                raise ValueError('needs "shape" and a float "dtype"')
        except (OSError, ValueError) as e:
            raise RuntimeError(f'teacher feature cache: cannot read {path} ({e!r}); delete '
                               f'{ns} to rebuild this teacher\'s cache') from e
        self._meta[ns] = meta
        return meta

    def _write_meta(self, ns: str, teacher: nn.Module, maps: Tensor) -> dict:
        meta = dict(teacher=f'{type(teacher).__name__}({teacher.extra_repr()})',
                    shape=list(maps.shape[1:]), dtype=str(maps.dtype))
        if meta['dtype'] not in _DTYPES:
            raise TypeError(f'teacher feature cache: cannot store {maps.dtype} maps')
        self.writer.write(os.path.join(ns, 'meta.json'),
                           lambda f: f.write(json.dumps(meta, indent=1).encode()))
        self._meta[ns] = meta
        return meta

    def _read(self, path: str, meta: dict) -> np.ndarray:
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise RuntimeError(f'teacher feature cache: cannot read {path} ({e!r}); delete it '
                               'to recompute it') from e
        if list(arr.shape) != list(meta['shape']) or arr.dtype != np.float32:
            raise RuntimeError(f'teacher feature cache: {path} holds {arr.dtype} {list(arr.shape)}, '
                               f'expected float32 {meta["shape"]} (meta.json); delete it to '
                               'recompute it')
        return arr

    def _write(self, path: str, arr: np.ndarray) -> None:
        """One entry: a (C, h, w) float32 map."""
        self.writer.write(path, lambda f: np.save(f, arr, allow_pickle=False))
