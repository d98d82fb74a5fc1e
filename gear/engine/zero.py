"""DeepSpeed ZeRO with one engine per optimizer group (``configs/_base_/strategies/zero*.py``).

mmengine's ``DeepSpeedStrategy`` builds one engine around the whole model with one optimizer and
bypasses the model's ``train_step``. GEAR steps three groups in three phases, so here each group
gets its own engine::

    engine_g = deepspeed.initialize(model=<group module>, optimizer=<group optimizer>, config)

built by ``ModuleOptimWrapperConstructor`` when the model is wrapped in ``GearDeepSpeedWrapper``.
The engine is installed as the model's ``train_module(name)`` handle (so the phase's forward
runs through it) and the group's ``DeepSpeedOptimWrapper`` calls ``engine.backward(loss)`` and
``engine.step()``. Frozen modules (teachers, perceptual net, frozen tokenizer, EMA copies) stay
outside every engine.

ZeRO-1/2 partition optimizer state (and gradients) only; the modules keep whole parameters, so
GEAR's frozen calls (D in the tokenizer phase, the prior's soft branch) work unchanged. ZeRO-3
partitions the parameters too, so it is allowed only for models with one trainable module
(``FrozenTokenizerAR``, stage 2); EMA updates and state dicts then gather the parameters.

Checkpoints: next to the runner's ``iter_N.pth`` each engine writes its ZeRO shards to
``iter_N.deepspeed/<group>/`` (all ranks, before the ``.pth`` is written, so a ``.pth`` always has
complete shards); ``--resume`` reloads them. The ``.pth`` and ``final.pth`` hold the plain, whole
model state dict, as without DeepSpeed. A shard write that fails (a full disk) raises
``FileWriteError`` naming the folder on that rank; its ``.pth`` is then never written, so
``--resume`` never reads the half-written folder (the next complete save removes it).
"""
import os
import os.path as osp
from typing import Dict, Optional

import torch.distributed as dist
from mmengine.optim import OptimWrapper
from torch import nn

from gear.registry import MODEL_WRAPPERS, OPTIM_WRAPPERS
from gear.utils.checkpoint import FileWriteError

from .distributed import GearModelWrapper


def engine_dir(checkpoint_path: str) -> str:
    """``work_dir/iter_N.pth`` -> ``work_dir/iter_N.deepspeed`` (the engines' shards)."""
    return osp.splitext(checkpoint_path)[0] + '.deepspeed'


@MODEL_WRAPPERS.register_module()
class GearDeepSpeedWrapper(GearModelWrapper):
    """Holds the model; ``build_engine`` makes one DeepSpeed engine per optimizer group.

    Args:
        module (BaseModel): the gear model.
        zero_stage (int): 0, 1, 2 or 3 (3 only for single-module models).
        config (dict, optional): more DeepSpeed config keys, merged over the defaults
            (fp32, gradient accumulation 1, the group's ``clip_grad.max_norm`` as clipping).
        micro_batch_size (int): ``train_micro_batch_size_per_gpu`` (throughput reporting only;
            the runner's dataloader decides the batch); the runner fills it in.
        average_log_vars (bool): see ``GearModelWrapper``.
    """

    def __init__(self, module: nn.Module, zero_stage: int = 2, config: Optional[dict] = None,
                 micro_batch_size: int = 1, average_log_vars: bool = False):
        super().__init__(module, average_log_vars)
        if zero_stage not in (0, 1, 2, 3):
            raise ValueError(f'deepspeed_cfg.zero_stage must be 0, 1, 2 or 3, got {zero_stage!r}')
        if zero_stage == 3 and len(module.train_module_names) > 1:
            raise ValueError(
                f'deepspeed_cfg.zero_stage=3: {type(module).__name__} calls its trainable modules '
                f'{list(module.train_module_names)} outside their engines while frozen (e.g. the '
                'prior soft branch in the tokenizer phase), which ZeRO-3 partitioned parameters '
                'do not allow; use strategies/zero2.py (or zero1.py) for this stage')
        import deepspeed
        deepspeed.init_distributed(dist_backend=dist.get_backend())  # reuses the process group
        self.zero_stage = zero_stage
        self.extra_config = dict(config or {})
        self.micro_batch_size = int(micro_batch_size)

    def ds_config(self, clip_grad: Optional[float]) -> dict:
        cfg = dict(train_micro_batch_size_per_gpu=self.micro_batch_size,
                   gradient_accumulation_steps=1,
                   gradient_clipping=float(clip_grad or 0.0),
                   zero_optimization=dict(stage=self.zero_stage),
                   zero_allow_untested_optimizer=True,
                   steps_per_print=2 ** 31 - 1, wall_clock_breakdown=False)
        for key, value in self.extra_config.items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
        return cfg

    def build_engine(self, name: str, optimizer, clip_grad: Optional[float]):
        """Engine around ``model.<name>`` and its group optimizer; installed as the handle."""
        import deepspeed
        if name not in self.module.train_module_names:
            raise KeyError(f'optim_wrapper.{name}: under DeepSpeed each group must be one module '
                           f'the model steps, one of {list(self.module.train_module_names)}')
        engine, *_ = deepspeed.initialize(model=getattr(self.module, name), optimizer=optimizer,
                                          config=self.ds_config(clip_grad))
        self.install(name, engine)
        return engine

    def refresh_master_weights(self) -> None:
        """After weights were loaded into the modules (``load_from``): copy them into ZeRO's
        fp32 master partitions, which the next step would otherwise write back over them."""
        for engine in self.handles.values():
            refresh = getattr(engine.optimizer, 'refresh_fp32_params', None)  # ZeRO 1-3
            if refresh is not None:
                refresh()

    def save_engines(self, checkpoint_path: str) -> None:
        """All ranks: write each engine's shards to ``engine_dir(checkpoint_path)/<group>``.

        Raises:
            FileWriteError: If a write fails; DeepSpeed's ``torch.save(path)`` reports a full
                disk as ``RuntimeError('... file write failed')``, without the errno, so the
                message gives the space left.
        """
        folder = engine_dir(checkpoint_path)
        for name, engine in self.handles.items():
            try:
                engine.save_checkpoint(folder, tag=name, save_latest=False)
            except (OSError, RuntimeError) as e:
                if not isinstance(e, OSError) and 'write' not in str(e):
                    raise
                stat = os.statvfs(folder) if osp.isdir(folder) else None
                free = (f', {stat.f_bavail * stat.f_frsize / 2 ** 20:.0f} MiB free there'
                        if stat else '')
                what = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip()
                error = FileWriteError(getattr(e, 'errno', None),
                                       f'rank {dist.get_rank()}: {what} while writing '
                                       f'{osp.join(folder, name)} (DeepSpeed shards{free})')
                error.path = folder
                raise error from e
        dist.barrier()

    def load_engines(self, checkpoint_path: str) -> None:
        """All ranks: reload each engine's module and optimizer shards saved by ``save_engines``."""
        folder = engine_dir(checkpoint_path)
        for name, engine in self.handles.items():
            if not osp.isdir(osp.join(folder, name)):
                raise FileNotFoundError(
                    f'{checkpoint_path} was saved without DeepSpeed shards for group {name!r} '
                    f'(expected {osp.join(folder, name)}); resume it without deepspeed_cfg')
            path, _ = engine.load_checkpoint(folder, tag=name, load_optimizer_states=True,
                                             load_lr_scheduler_states=False)
            if path is None:
                raise RuntimeError(f'DeepSpeed could not load {osp.join(folder, name)}')


@OPTIM_WRAPPERS.register_module()
class DeepSpeedOptimWrapper(OptimWrapper):
    """A group's optimizer wrapper whose backward and step go through its DeepSpeed engine.

    ``optimizer`` stays the group's torch optimizer (its ``param_groups`` are the ones ZeRO
    steps, so mmengine's LR schedulers work); gradient clipping is the engine's. The optimizer
    state lives in the engine's shards (``GearDeepSpeedWrapper.save_engines``), so
    ``state_dict`` holds only the learning rates.
    """

    def __init__(self, optimizer, engine, **kwargs):
        super().__init__(optimizer, **kwargs)
        self.engine = engine

    def backward(self, loss, **kwargs) -> None:
        self.engine.backward(loss, **kwargs)
        self._inner_count += 1

    def step(self, **kwargs) -> None:
        self.engine.step()  # clips, steps, zeroes the gradients

    def zero_grad(self, **kwargs) -> None:
        pass  # engine.step() did

    def state_dict(self) -> Dict:
        return dict(deepspeed=True, lr=[group['lr'] for group in self.optimizer.param_groups])

    def load_state_dict(self, state_dict: Dict) -> None:
        if not state_dict.get('deepspeed'):
            raise KeyError('optimizer state was saved without DeepSpeed; resume it without '
                           'deepspeed_cfg or start fresh')
        for group, lr in zip(self.optimizer.param_groups, state_dict['lr']):
            group['lr'] = lr
