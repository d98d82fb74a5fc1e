"""Make a releasable model-zoo file from a gear weights file or a training checkpoint.

    path, entry = publish_model('work_dirs/gear_vq_l_imagenet/final.pth', out_dir='release')

The file written is a gear weights file (``{'schema_version', 'arch', 'state_dict'}``) named
``{name}-{sha256[:8]}.pth``, atomically: optimizer, scheduler and message-hub state are not in
it; the EMA weights a stage model holds (``tokenizer_ema.module.*``, ``prior_ema.module.*``) are
in its state dict and kept, with the model config (or the tokenizer arch) that rebuilds it. A
non-finite weight is refused before anything is written. ``entry`` is the metafile item
(``Models:`` in ``configs/*/metafile.yml``) to paste, with its sha256 and size.
"""
import os.path as osp
from typing import Any, Dict, Optional, Tuple

import torch
from mmengine.config import Config

from gear.engine.hooks.export_weights import dataset_configs
from gear.utils.checkpoint import CheckpointError, file_sha256, load_file, save_hashed_weights

from .loading import _read_checkpoint

STAGES = dict(TokenizerWarmup='warmup', GEAR='gear', GEAREndToEnd='gear', FrozenTokenizerAR='ar')
FAMILIES = dict(VQTokenizer='vq', LFQTokenizer='lfq', IBQTokenizer='ibq')


def _weights_and_arch(checkpoint: str, config: Optional[str]) -> Tuple[Dict[str, Any], dict]:
    """(state dict, arch) of a weights file or, with ``config``, a training checkpoint."""
    ckpt = None
    try:
        ckpt = load_file(checkpoint, weights_only=True)
    except CheckpointError:
        if config is None:
            raise
    if (isinstance(ckpt, dict) and 'schema_version' in ckpt and config is None
            and 'model' not in (ckpt.get('arch') or {})):  # a tokenizer weights file
        if not ckpt.get('arch'):
            raise CheckpointError(f'{checkpoint} has no arch: it cannot be rebuilt on its own')
        return ckpt['state_dict'], dict(ckpt['arch'])
    model_cfg, state_dict = _read_checkpoint(checkpoint, config)
    arch = dict(model=model_cfg)
    data = (dataset_configs(Config.fromfile(config)) if config is not None else
            (ckpt.get('arch') or {}).get('data') if isinstance(ckpt, dict) else None)
    if data:  # the dataset configs: evaluation's default images and FID reference
        arch['data'] = data
    return state_dict, arch


def check_finite(state_dict: Dict[str, Any], source: str) -> None:
    """Raise ``ValueError`` naming the first tensor with a NaN or an infinity."""
    for key, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(f'{source}: {key} has {bad} non-finite value(s); refusing to publish')


def _family_and_stage(arch: dict) -> Tuple[str, str]:
    model = arch.get('model')
    if model is None:  # a tokenizer alone
        return FAMILIES.get(arch.get('type', 'VQTokenizer'), '?'), 'warmup'
    stage = STAGES.get(model.get('type'), '?')
    if stage == 'ar':
        return 'gpt', stage
    return FAMILIES.get((model.get('tokenizer') or {}).get('type'), '?'), stage


def publish_model(checkpoint: str, out_dir: str = '.', name: Optional[str] = None,
                  config: Optional[str] = None) -> Tuple[str, dict]:
    """Write ``{out_dir}/{name}-{sha256[:8]}.pth`` and return (its path, its metafile entry).

    Args:
        checkpoint: a gear weights file (``final.pth``, a tokenizer weights file) or, with
            ``config``, a training checkpoint (``iter_N.pth``).
        out_dir: where the file goes.
        name: the release name (lowercase); default: the run directory's name for
            ``final.pth`` / ``iter_N.pth``, else the file's stem.
        config: the config of the run (required for a training checkpoint; for a weights file
            it replaces the stored model config).

    Raises:
        CheckpointError: unreadable file, or a training checkpoint without ``config``.
        ValueError: a non-finite weight (nothing is written).
    """
    state_dict, arch = _weights_and_arch(checkpoint, config)
    check_finite(state_dict, checkpoint)
    if name is None:
        stem = osp.splitext(osp.basename(checkpoint))[0]
        generic = stem == 'final' or stem.startswith(('iter_', 'epoch_'))
        name = osp.basename(osp.dirname(osp.abspath(checkpoint))) if generic else stem
    name = name.lower().replace('_', '-')
    path = save_hashed_weights(state_dict, osp.join(out_dir, f'{name}.pth'), arch)
    sha256 = file_sha256(path)
    family, stage = _family_and_stage(arch)
    filename = osp.basename(path)
    entry = {'Name': name, 'In Collection': 'gear', 'Config': config or 'configs/...',
             'Metadata': dict(Family=family, Stage=stage, Key=None, Size=osp.getsize(path)),
             'Results': [], 'Weights': f'https://YOUR-HOST/{filename}',
             'Source': {'URL': f'https://YOUR-HOST/{filename}'}, 'SHA256': sha256}
    return path, entry
