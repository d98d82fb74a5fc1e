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
  (mmengine's launcher calls ``torch.cuda.set_device`` unconditionally), with the timeout of
  ``env_cfg.dist_cfg.timeout``.
- Collectives run on every rank or on none: mmengine calls ``before_save_checkpoint`` on rank
  0 only, so ``save_checkpoint`` first calls the hooks' ``before_save_checkpoint_all_ranks``
  on every rank (where ``LogSyncHook`` flushes its window).
- A non-finite model state is never written as a checkpoint: ``save_checkpoint`` checks it
  (one sync per checkpoint, agreed over ranks) and raises ``NonFiniteError`` instead
  (gear/engine/nonfinite.py). On any ``NonFiniteError`` (also the log watchdog's and
  ``ExportWeightsHook``'s) ``train`` writes the state at the stop to ``nonfinite_iter_{N}.pth``,
  which ``--resume`` never picks and ``last_checkpoint`` never names, and completes the error
  with it and the last finite checkpoint. ``GearCheckpointHook`` (the ``checkpoint`` default
  hook) removes the checkpoint ``max_keep_ckpts`` drops only after the new one is written, so a
  refused or failed save loses nothing.
- Each rank loads ``global_batch_size / world size`` images a step (gear/engine/batch.py),
  so the global batch is the config's whatever the number of GPUs.
- ``sync_bn`` ('gear' on any device, 'torch' on GPUs, 'auto': 'torch' on CUDA else 'gear';
  the ImageNet recipes set 'auto', as the official converts when distributed) synchronises the BatchNorm statistics of
  the trainable modules (the discriminator) over ranks; without it each rank normalises with
  its own batch.
- Multi-process runs wrap the model per trainable module: ``model_wrapper_cfg`` (default
  ``GearDistributedDataParallel``) or, when the config has ``deepspeed_cfg``
  (``configs/_base_/strategies/zero*.py``), ``GearDeepSpeedWrapper`` with one engine per
  optimizer group; its ZeRO shards are saved beside each checkpoint and reloaded on resume.
"""
import contextlib
import glob
import os.path as osp
import re
import shutil
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.device import get_device
from mmengine.fileio import LocalBackend, register_backend
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from gear.registry import MODEL_WRAPPERS, RUNNERS
from gear.utils.checkpoint import atomic_open, load_file, load_state_dict_strict
from gear.utils.distributed import broadcast_coalesced, gathered, init_process_group, set_timeout
from gear.utils.sync_batchnorm import convert_sync_batchnorm

from .batch import GLOBAL_BATCH_KEY, rank_dataloader_cfg
from .resume_check import META_KEY, check_resume, run_record
from .nonfinite import (NonFiniteError, first_nonfinite_tensor, nonfinite_checkpoint_name,
                        state_error)
from .zero import GearDeepSpeedWrapper, engine_dir

ATOMIC_BACKEND = 'gear_atomic_local'
# The default hooks mmengine registers itself (Runner.register_default_hooks).
MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger', 'param_scheduler',
                          'checkpoint')


class AtomicLocalBackend(LocalBackend):
    """mmengine file backend whose writes are atomic (used for checkpoints and their pointers);
    a failed write raises ``FileWriteError`` naming the file (gear/utils/checkpoint.py)."""

    def put(self, obj: bytes, filepath) -> None:
        with self.open_atomic(str(filepath)) as f:
            f.write(obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)

    def open_atomic(self, path: str):
        """The file every write goes through: ``atomic_open(path)``."""
        return atomic_open(path)


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


def prune_engine_dirs(work_dir: str) -> None:
    """Remove ``iter_N.deepspeed`` shard folders whose ``iter_N.pth`` the checkpoint hook
    removed."""
    for folder in glob.glob(osp.join(work_dir, '*.deepspeed')):
        if not osp.isfile(osp.splitext(folder)[0] + '.pth'):
            shutil.rmtree(folder, ignore_errors=True)


class FinalConfig(Config):
    """A runner's config, whose ``pretty_text`` is formatted once.

    mmengine formats the whole config with yapf for the log, the dumped file, the visualiser
    and the ``meta`` of every checkpoint: seven times per run, 0.36 s each for a tiny GEAR
    config on a CPU. A runner's config no longer changes once the runner is built, so the text
    is kept after the first call.
    """

    @property
    def pretty_text(self) -> str:
        text = self.__dict__.get('_pretty_text_cache')
        if text is None:
            text = super().pretty_text
            object.__setattr__(self, '_pretty_text_cache', text)
        return text


@RUNNERS.register_module()
class GearRunner(Runner):
    """mmengine ``Runner`` with atomic checkpoints, strict loading and CPU process groups."""

    @classmethod
    def from_cfg(cls, cfg) -> 'GearRunner':
        if isinstance(cfg, Config) and not isinstance(cfg, FinalConfig):
            final = FinalConfig.__new__(FinalConfig)
            for key, value in cfg.__dict__.items():
                object.__setattr__(final, key, value)
            cfg = final
        return super().from_cfg(cfg)

    def setup_env(self, env_cfg: dict) -> None:
        """``env_cfg.dist_cfg.timeout`` (seconds) bounds every collective; on a machine without
        CUDA, ``--launcher pytorch`` starts a gloo process group here. Then the train
        dataloader gets its per-rank batch, ``global_batch_size / world size``
        (gear/engine/batch.py)."""
        timeout = (env_cfg.get('dist_cfg') or {}).get('timeout')
        set_timeout(timeout)
        if self._launcher == 'pytorch' and not torch.cuda.is_available() and not dist.is_initialized():
            init_process_group('gloo', timeout)
        super().setup_env(env_cfg)
        # the world size is known from here on: each rank loads global_batch_size / world size
        self._train_dataloader = rank_dataloader_cfg(
            self._train_dataloader, self.cfg.get(GLOBAL_BATCH_KEY), self.world_size)

    def register_default_hooks(self, hooks=None) -> None:
        """mmengine's, where ``name=None`` removes any default hook: mmengine removes only its
        own six that way and refuses None for the ones gear adds (``default_hooks.export_weights``,
        ``rng_state``, ``codebook_monitor``, ``log_sync``, ``signals``:
        configs/_base_/default_runtime.py)."""
        if hooks is not None:
            hooks = {name: hook for name, hook in hooks.items()
                     if hook is not None or name in MMENGINE_DEFAULT_HOOKS}
        super().register_default_hooks(hooks)

    def build_train_loop(self, loop):
        """mmengine's, after the hooks' ``before_train_loop`` (``SignalHook`` installs its
        handlers there: the loop's dataloader workers, forked, inherit them)."""
        if isinstance(loop, dict):
            self.call_hook('before_train_loop')
        return super().build_train_loop(loop)

    def wrap_model(self, model_wrapper_cfg, model):
        """One process: the model as it is. Several: ``sync_bn`` ('gear': any device; 'torch':
        GPUs; 'auto': 'torch' on CUDA, else 'gear') converts the BatchNorm layers of the modules the model steps, then the model is
        wrapped per trainable module: ``model_wrapper_cfg`` (default
        ``GearDistributedDataParallel``) or, with ``deepspeed_cfg`` (a strategies/zero*.py
        fragment), ``GearDeepSpeedWrapper``."""
        if is_model_wrapper(model):
            return model
        self._start_from_earlier_stage(model)
        model = model.to(get_device())
        deepspeed_cfg = self.cfg.get('deepspeed_cfg')
        if not self.distributed:
            if deepspeed_cfg is not None:
                self.logger.warning('deepspeed_cfg is ignored in a single-process run; launch '
                                    'with torchrun ... --launcher pytorch to use ZeRO')
            return model
        sync_bn = self.cfg.get('sync_bn')
        if sync_bn == 'auto':  # the official's choice on GPUs, gear's elsewhere
            sync_bn = 'torch' if next(model.parameters()).device.type == 'cuda' else 'gear'
        if sync_bn is not None:
            if sync_bn == 'torch' and next(model.parameters()).device.type == 'cpu':
                raise ValueError("sync_bn='torch': torch's SyncBatchNorm runs on GPUs only; use "
                                 "sync_bn='gear' on a CPU (gloo) run")
            for name in model.train_module_names:
                convert_sync_batchnorm(getattr(model, name), sync_bn)
            self.logger.info(f'sync_bn={sync_bn!r}: BatchNorm statistics of '
                             f'{list(model.train_module_names)} over all ranks')
        if deepspeed_cfg is not None:
            loader = self._train_dataloader
            batch = (loader.get('batch_size', 1) if isinstance(loader, dict)
                     else getattr(loader, 'batch_size', 1))  # this rank's batch
            model_wrapper_cfg = {'micro_batch_size': batch, **deepspeed_cfg,
                                 'type': 'GearDeepSpeedWrapper'}
        model_wrapper_cfg = dict(model_wrapper_cfg or dict(type='GearDistributedDataParallel'))
        return MODEL_WRAPPERS.build(model_wrapper_cfg, default_args=dict(module=model))

    def _start_from_earlier_stage(self, model) -> None:
        """Apply the model's ``init_from`` (``init_weights``) before the model is wrapped, so
        DeepSpeed's master weights start from it; skip it when a checkpoint will provide every
        weight (``--resume`` that finds one, ``load_from``): resuming never needs the earlier
        stage's file."""
        if not hasattr(model, 'skip_init_from'):
            return
        source = self._load_from
        if self._resume and source is None:
            source = find_latest_checkpoint(self.work_dir)
        if source is not None:
            model.skip_init_from(f'the weights come from {source}')
        else:
            model.init_weights()

    def _init_model_weights(self) -> None:
        """mmengine's, with rank 0's weights sent in a few coalesced broadcasts (mmengine sends
        every state-dict entry on its own)."""
        model = self.model.module if is_model_wrapper(self.model) else self.model
        if hasattr(model, 'init_weights'):
            if not getattr(model, '_is_init', False):  # already run by wrap_model
                model.init_weights()
            broadcast_coalesced(model.state_dict().values())

    @property
    def deepspeed_wrapper(self) -> Optional[GearDeepSpeedWrapper]:
        return self.model if isinstance(self.model, GearDeepSpeedWrapper) else None

    def save_checkpoint(self, out_dir, filename, file_client_args=None, save_optimizer=True,
                        save_param_scheduler=True, meta=None, by_epoch=True, backend_args=None):
        """Called on every rank (mmengine's own save runs on rank 0 only). Every rank first runs
        the hooks' ``before_save_checkpoint_all_ranks`` (collectives such as the log flush
        belong there: mmengine's ``before_save_checkpoint`` runs on rank 0 alone); then the
        model state is checked (``NonFiniteError``, nothing written, if not finite); under
        DeepSpeed every rank then writes its engine shards; then rank 0 writes the whole state
        dict."""
        self.call_hook('before_save_checkpoint_all_ranks')
        meta = dict(meta or {}, **{META_KEY: self.run_record()})
        if backend_args is None and file_client_args is None and '://' not in str(out_dir):
            backend_args = dict(backend=ATOMIC_BACKEND)
        with self.whole_parameters():  # ZeRO-3: every rank gathers, rank 0 writes
            found = first_nonfinite_tensor(self._bare_model.state_dict().items())
        if found is not None:
            step = (meta or {}).get('iter', self.iter + 1)
            raise state_error(f'checkpoint {osp.join(out_dir, filename)}', step, found)
        ds = self.deepspeed_wrapper
        if ds is not None:
            ds.save_engines(osp.join(out_dir, filename))
        with self.whole_parameters():
            super().save_checkpoint(out_dir, filename, file_client_args=file_client_args,
                                    save_optimizer=save_optimizer,
                                    save_param_scheduler=save_param_scheduler, meta=meta,
                                    by_epoch=by_epoch, backend_args=backend_args)
        if ds is not None and dist.get_rank() == 0:
            prune_engine_dirs(out_dir)

    def run_record(self) -> dict:
        """What a checkpoint records of this run (gear/engine/resume_check.py)."""
        deepspeed_cfg = self.cfg.get('deepspeed_cfg')
        zero_stage = (deepspeed_cfg.get('zero_stage', 2)
                      if deepspeed_cfg is not None and self.distributed else None)
        return run_record(self.world_size, self.cfg.get(GLOBAL_BATCH_KEY), zero_stage)

    @property
    def _bare_model(self):
        return self.model.module if is_model_wrapper(self.model) else self.model

    def train(self):
        """mmengine's; a ``NonFiniteError`` first gets the state at the stop saved beside the
        checkpoints (every rank raises it at the same step: the values it reads are the same
        on all ranks) and names the checkpoint to resume from."""
        try:
            return super().train()
        except NonFiniteError as e:
            e.last_finite, e.resume_checked = find_latest_checkpoint(self.work_dir), True
            try:
                e.checkpoint = self.save_nonfinite_checkpoint(e.stop_step)
            except Exception as save_error:  # the error the user needs is still the first one
                e.checkpoint_error = f'{type(save_error).__name__}: {save_error}'
            self.logger.error(f'NonFiniteError: {e}')
            raise

    def save_nonfinite_checkpoint(self, step: int) -> str:
        """Write the whole training state as ``nonfinite_iter_{step}.pth`` in the work dir, for
        debugging: not checked, not rotated, not named by ``last_checkpoint``, not picked by
        ``--resume`` (``find_latest_checkpoint`` matches ``iter_N.pth`` only). Under
        DeepSpeed the engines' optimizer shards are not written."""
        filename = nonfinite_checkpoint_name(step)
        with self.whole_parameters():
            Runner.save_checkpoint(self, self.work_dir, filename, meta=dict(iter=step),
                                   by_epoch=False, backend_args=dict(backend=ATOMIC_BACKEND))
        return osp.join(self.work_dir, filename)

    def resume(self, filename: str, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True, map_location='default') -> None:
        """mmengine's resume, refusing a checkpoint of another global batch size or strategy
        (or world size under ZeRO) before any state is loaded (``check_resume``)."""
        self._resuming_from = filename
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        finally:
            self._resuming_from = None
        if self.deepspeed_wrapper is not None and resume_optimizer:
            self.deepspeed_wrapper.load_engines(filename)
            self.logger.info(f'Loaded the DeepSpeed engine shards from {engine_dir(filename)}')

    def call_hook(self, fn_name: str, **kwargs) -> None:
        if fn_name == 'after_train':  # final.pth (rank 0 only): gather on every rank first
            with self.whole_parameters():
                return super().call_hook(fn_name, **kwargs)
        return super().call_hook(fn_name, **kwargs)

    @contextlib.contextmanager
    def whole_parameters(self, modifier_rank: Optional[int] = None):
        """ZeRO-3 parameters gathered on every rank for the block (a no-op otherwise); nested
        blocks reuse the outer gather, whose exit alone re-partitions them."""
        if self.__dict__.get('_whole_parameters'):
            yield
            return
        self._whole_parameters = True
        try:
            model = self.model.module if is_model_wrapper(self.model) else self.model
            with gathered(model, modifier_rank=modifier_rank):
                yield
        finally:
            self._whole_parameters = False

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = True,
                        revise_keys=None):
        """Load a training checkpoint into the model; strict unless asked otherwise."""
        checkpoint = load_file(filename, map_location=map_location, weights_only=False)
        if self.__dict__.get('_resuming_from') == filename:
            note = check_resume(checkpoint.get('meta', {}).get(META_KEY), self.run_record(),
                                filename)
            if note:
                self.logger.warning(note)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        state_dict = checkpoint.get('state_dict', checkpoint)
        state_dict = {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
        with self.whole_parameters(modifier_rank=0):  # ZeRO-3: load whole, re-partition after
            if strict:
                load_state_dict_strict(model, state_dict, source=filename)
            else:
                model.load_state_dict(state_dict, strict=False)
        if self.deepspeed_wrapper is not None:  # ZeRO's fp32 masters were copied at engine init
            self.deepspeed_wrapper.refresh_master_weights()
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
