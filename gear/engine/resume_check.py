"""What a training checkpoint records about how it was trained, and which resumes gear allows.

Every training checkpoint's ``meta['gear_run']`` holds::

    world_size         ranks of the run that wrote it
    global_batch_size  images per optimizer step over all ranks (the config's one batch knob)
    zero_stage         DeepSpeed ZeRO stage (None: no DeepSpeed)

``--resume`` compares them with the run that resumes (``check_resume``):
- another ``global_batch_size``: refused, naming both values. The step counter, the LR and EMA
  schedules and the data position are all counted in steps of that batch; a run that changes it
  is a new run (start it from the checkpoint with ``load_from`` / ``init_from``).
- another ``zero_stage`` (DeepSpeed on or off, or another stage): refused, naming both.
- another world size under DeepSpeed: refused, naming both. Each rank's ZeRO shards hold that
  rank's partition of the optimizer state, saved for that number of ranks.
- another world size without DeepSpeed (one process, DDP): allowed. The ``.pth`` holds the
  whole model, optimizer, schedulers and message hub; each rank loads ``global_batch_size /
  world size`` images, and mmengine's samplers deal one shuffled stream out rank by rank, so step
  ``s`` still trains on stream positions ``[s * B, (s + 1) * B)``: no image is repeated or
  skipped. What differs from an uninterrupted run: which rank holds which image (BatchNorm
  statistics without ``sync_bn``, the floating-point order of the gradient mean) and the data
  workers' augmentation seeds, which depend on the rank, so the losses are not bit-identical.
Checkpoints from before this record was added resume unchecked.
"""
from typing import Optional

from .config_check import ConfigError

META_KEY = 'gear_run'


def run_record(world_size: int, global_batch_size: Optional[int],
               zero_stage: Optional[int]) -> dict:
    """The ``meta['gear_run']`` entry of a checkpoint written by this run."""
    return dict(world_size=int(world_size), global_batch_size=global_batch_size,
                zero_stage=zero_stage)


def check_resume(saved: Optional[dict], current: dict, filename: str) -> Optional[str]:
    """Refuse the resumes this module's docstring lists; allow the others.

    Args:
        saved: ``meta['gear_run']`` of the checkpoint (None: an older checkpoint, unchecked).
        current: ``run_record`` of the resuming run.
        filename: the checkpoint, named in the error.

    Returns:
        A note for the log when the world size changes (allowed), else None.

    Raises:
        ConfigError: naming the setting and both values.
    """
    if not saved:
        return None
    if saved.get('global_batch_size') != current['global_batch_size']:
        raise ConfigError(
            f'global_batch_size: --resume from {filename}, which was trained with '
            f'global_batch_size={saved.get("global_batch_size")}, but this run has '
            f'global_batch_size={current["global_batch_size"]}. Steps, LR and EMA schedules and '
            f'the data position count steps of that batch: resume with global_batch_size='
            f'{saved.get("global_batch_size")}, or start a new run from the checkpoint '
            f'(load_from={filename!r}, without --resume)')
    if saved.get('zero_stage') != current['zero_stage']:
        raise ConfigError(
            f'deepspeed_cfg.zero_stage: --resume from {filename}, written with zero_stage='
            f'{saved.get("zero_stage")} (None: no DeepSpeed), but this run has zero_stage='
            f'{current["zero_stage"]}; resume with the strategy the run was trained with'
            + ('' if current['zero_stage'] is not None else
               ' (DeepSpeed runs only under torchrun ... --launcher pytorch: one process '
               'ignores deepspeed_cfg)'))
    if saved.get('world_size') == current['world_size']:
        return None
    if current['zero_stage'] is not None:
        raise ConfigError(
            f'world size: --resume from {filename}, whose DeepSpeed ZeRO-{current["zero_stage"]} '
            f'shards were written by {saved.get("world_size")} ranks, with {current["world_size"]} '
            f'ranks; each rank holds its own partition of the optimizer state. Resume with '
            f'{saved.get("world_size")} ranks')
    return (f'--resume: {filename} was written by {saved.get("world_size")} rank(s), this run has '
            f'{current["world_size"]}: the model, optimizer, schedulers and data position carry '
            f'over (the same images per step), but not bit for bit (per-rank BatchNorm '
            f'statistics, gradient summation order, data-worker augmentation seeds)')
