"""Runner glue: the gear runner (atomic, strict checkpoints), the multi-group optimizer
constructor, hooks, the per-module DDP / DeepSpeed wrappers, and the config checks run before
anything is built."""
from . import hooks  # noqa: F401
from .config_check import check_config
from .distributed import GearDistributedDataParallel
from .optim_constructor import ModuleOptimWrapperConstructor
from .runner import GearRunner
from .zero import DeepSpeedOptimWrapper, GearDeepSpeedWrapper

__all__ = ['GearRunner', 'ModuleOptimWrapperConstructor', 'check_config',
           'GearDistributedDataParallel', 'GearDeepSpeedWrapper', 'DeepSpeedOptimWrapper']
from .optim_wrappers import GearAmpOptimWrapper, GearOptimWrapper  # noqa: E402
from .optimizers import FusedAdamW  # noqa: E402

__all__ += ['FusedAdamW', 'GearAmpOptimWrapper', 'GearOptimWrapper']
