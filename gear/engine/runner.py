"""``GearRunner``: mmengine's Runner with the adapters gear needs (ASSETS.md lists the gaps).

- Checkpoints are written atomically (temporary file + rename), so a crash or preemption never
  leaves a half-written ``iter_N.pth`` that ``--resume`` would then pick up.
- Loading is strict and names the first mismatching keys; training checkpoints (which pickle
  mmengine's message hub) are read with ``weights_only=False`` because torch >= 2.6 defaults to
  ``True`` and mmengine 0.10.7 predates that. Only files in the run's own work dir, or ones the
  user names with ``load_from``, are read this way.
- ``--resume`` picks the newest complete checkpoint in the work dir, even if ``last_checkpoint``
  is stale or points to a file that is gone.
- On a machine without CUDA, ``--launcher pytorch`` initialises a gloo process group itself
  (mmengine's launcher calls ``torch.cuda.set_device`` unconditionally).
"""
import glob
import os
import os.path as osp
import re
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.fileio import LocalBackend, register_backend
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from gear.registry import RUNNERS
from gear.utils.checkpoint import atomic_write_bytes, load_file, load_state_dict_strict

ATOMIC_BACKEND = 'gear_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """mmengine file backend whose writes are atomic (used for checkpoints and their pointers)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), str(filepath))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


def find_latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint to resume from: ``last_checkpoint``'s target if it exists, else the newest
    ``iter_N.pth`` / ``epoch_N.pth`` in ``work_dir`` (temporary files are never matched)."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            target = f.read().strip()
        if target and osp.isfile(target):
            return target
    found = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        m = re.fullmatch(r'(?:iter|epoch)_(\d+)\.pth', osp.basename(path))
        if m:
            found.append((int(m.group(1)), path))
    return max(found)[1] if found else None


@RUNNERS.register_module()
class GearRunner(Runner):
    """mmengine ``Runner`` with atomic checkpoints, strict loading and CPU process groups."""

    def setup_env(self, env_cfg: dict) -> None:
        if self._launcher == 'pytorch' and not torch.cuda.is_available() and not dist.is_initialized():
            dist.init_process_group(backend='gloo')
        super().setup_env(env_cfg)

    def save_checkpoint(self, out_dir, filename, file_client_args=None, save_optimizer=True,
                        save_param_scheduler=True, meta=None, by_epoch=True, backend_args=None):
        if backend_args is None and file_client_args is None and '://' not in str(out_dir):
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().save_checkpoint(out_dir, filename, file_client_args=file_client_args,
                                save_optimizer=save_optimizer,
                                save_param_scheduler=save_param_scheduler, meta=meta,
                                by_epoch=by_epoch, backend_args=backend_args)

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = True,
                        revise_keys=None):
        """Load a training checkpoint into the model; strict unless asked otherwise."""
        checkpoint = load_file(filename, map_location=map_location, weights_only=False)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        state_dict = checkpoint.get('state_dict', checkpoint)
        state_dict = {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
        if strict:
            load_state_dict_strict(model, state_dict, source=filename)
        else:
            model.load_state_dict(state_dict, strict=False)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def load_or_resume(self) -> None:
        if self._has_loaded:
            return None
        if self._resume and self._load_from is None:
            latest = find_latest_checkpoint(self.work_dir)
            if latest is None:
                self.logger.info(f'--resume: no checkpoint in {self.work_dir}; starting at step 0')
                self._has_loaded = True
                return None
            self._load_from = latest
            self.logger.info(f'Resuming from the latest checkpoint {latest}')
        super().load_or_resume()
