"""The one batch knob: a config gives ``global_batch_size``; each rank loads its share.

The per-rank batch is ``global_batch_size / world size``, worked out when the runner knows the
world size (``GearRunner.setup_env``), so the same config trains at the recipe's global batch on
one GPU, on 8 or on 4 nodes x 8 (``slurm/launch.py --nodes 4``) with the recipe's LR. A config
never sets ``train_dataloader.batch_size`` itself (``check_config`` refuses it).
"""
from typing import Optional

from .config_check import ConfigError

GLOBAL_BATCH_KEY = 'global_batch_size'


def per_rank_batch(global_batch_size: int, world_size: int) -> int:
    """``global_batch_size // world_size``.

    Raises:
        ConfigError: naming ``global_batch_size`` if it is not a positive integer or does not
            divide over ``world_size`` ranks.
    """
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int) \
            or global_batch_size < 1:
        raise ConfigError(f'{GLOBAL_BATCH_KEY}: {global_batch_size!r}; give the batch of one '
                          'step over all ranks (a positive integer)')
    if global_batch_size % world_size:
        lower = global_batch_size - global_batch_size % world_size
        raise ConfigError(
            f'{GLOBAL_BATCH_KEY}: {global_batch_size} does not divide over {world_size} ranks '
            f'(each rank loads global_batch_size / world size images); use a multiple of '
            f'{world_size}, e.g. {lower or world_size} or {lower + world_size}')
    return global_batch_size // world_size


def rank_dataloader_cfg(dataloader: Optional[dict], global_batch_size: Optional[int],
                        world_size: int) -> Optional[dict]:
    """A copy of the ``train_dataloader`` config with ``batch_size`` set to this rank's share.

    ``dataloader`` is returned as it is if it is not a config dict (an already built
    ``DataLoader``, or None) or the config has no ``global_batch_size``.
    """
    if not isinstance(dataloader, dict) or global_batch_size is None:
        return dataloader
    return dict(dataloader, batch_size=per_rank_batch(global_batch_size, world_size))
