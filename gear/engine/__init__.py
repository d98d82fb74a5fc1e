"""Runner glue: the gear runner (atomic, strict checkpoints), the multi-group optimizer
constructor, hooks, and the config checks run before anything is built."""
from . import hooks  # noqa: F401
from .config_check import check_config
from .optim_constructor import ModuleOptimWrapperConstructor
from .runner import GearRunner

__all__ = ['GearRunner', 'ModuleOptimWrapperConstructor', 'check_config']
