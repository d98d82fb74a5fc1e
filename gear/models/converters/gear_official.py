"""Official GEAR training bundles -> gear's model key names (pure functions).

The official trainers (``train_tokenizer.py`` stage 0, ``train_gear.py`` stage 1) and the
released Warmup-* / GEAR-* files save one dict; read here under the names of a gear stage
model, so that a bundle is used exactly like a gear ``final.pth``:

| bundle entry | what | gear name |
|---|---|---|
| ``vq``, ``vq_ema`` | tokenizer, live and EMA (any family) | ``tokenizer.*``, ``tokenizer_ema.module.*`` |
| ``discriminator`` | PatchGAN ``main.*`` (gear's names) | ``discriminator.*`` |
| ``ar``, ``ema`` | LlamaGen GPT, live and EMA | ``prior.ar.*``, ``prior_ema.module.ar.*`` |
| ``projectors`` | ``ProjectorBank``: ``projs.{i}.{0,2,4}.*`` | ``prior.align_loss.projectors.{teacher i}.mlp.{0,2,4}.*`` |
| ``steps`` | iterations trained | ``tokenizer_ema.steps``, ``prior_ema.steps`` (the EMA counters, >= 1) |
| ``opt_*``, ``sched_*``, ``args``, ``stage`` | optimiser states, flags | not weights: ignored |

So ``init_from`` with ``modules={'tokenizer_ema.module': 'tokenizer'}`` takes ``vq_ema`` (the
official stage-2 and inference default, ``--vq-use-ema``), stage 1's
``{'tokenizer': ..., 'tokenizer_ema': ..., 'discriminator': ...}`` takes what the official
``--stage0-init-ckpt`` takes, and ar-init's ``{'prior_ema.module.ar': 'prior.ar', ...}`` the
stage-1 EMA AR (``--ar-init-ckpt``). The official keeps no EMA of the projectors. The EMA
counters are set (at least 1) so that mmengine's EMA, which copies its source on its first
update when its counter is 0, keeps the loaded EMA as the official does.
"""
import re
from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor

from gear.utils.checkpoint import strip_prefixes

from .common import unknown_keys_error
from .llamagen_gpt import convert_llamagen_gpt
from .tokenizers import convert_tokenizer

TOKENIZER_ENTRIES = {'vq': 'tokenizer', 'vq_ema': 'tokenizer_ema.module'}
AR_ENTRIES = {'ar': 'prior.ar', 'ema': 'prior_ema.module.ar'}
EMA_COUNTERS = {'vq_ema': 'tokenizer_ema.steps', 'ema': 'prior_ema.steps'}
NOT_WEIGHTS = re.compile(r'^(opt_|sched_)|^(args|steps|stage|global_step|epoch)$')
_PROJECTOR_KEY = re.compile(r'^projs\.(\d+)\.([024]\.(weight|bias))$')
_DISCRIMINATOR_KEY = re.compile(r'^main\.\d+\.(weight|bias|running_mean|running_var|'
                                r'num_batches_tracked)$')


def is_official_bundle(checkpoint: Any) -> bool:
    """An official GEAR stage-0 / stage-1 dict (``vq`` and / or ``vq_ema`` among its keys)."""
    return (isinstance(checkpoint, dict) and 'schema_version' not in checkpoint
            and isinstance(checkpoint.get('vq', checkpoint.get('vq_ema')), dict))


def convert_discriminator(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """The official PatchGAN (``NLayerDiscriminator``, BatchNorm or SyncBatchNorm) -> gear's
    ``PatchGANDiscriminator``: the same ``main.{i}.*`` names, wrapper prefixes stripped."""
    state_dict = strip_prefixes(state_dict)
    unknown = [k for k in state_dict if not _DISCRIMINATOR_KEY.match(k)]
    if unknown:
        raise unknown_keys_error(unknown, 'discriminator')
    return dict(state_dict)


def convert_projectors(state_dict: Dict[str, Tensor], teacher_names: Sequence[str]
                       ) -> Dict[str, Tensor]:
    """The official ``ProjectorBank`` (``projs.{i}``, one per ``--enc-type`` entry, in order) ->
    gear's ``align_loss.projectors.{name}`` (``teacher_names``: the model's teachers, in order)."""
    out, unknown, seen = {}, [], set()
    for name, value in strip_prefixes(state_dict).items():
        m = _PROJECTOR_KEY.match(name)
        if not m:
            unknown.append(name)
            continue
        i = int(m.group(1))
        seen.add(i)
        if i < len(teacher_names):
            out[f'align_loss.projectors.{teacher_names[i]}.mlp.{m.group(2)}'] = value
    if unknown:
        raise unknown_keys_error(unknown, 'projector')
    if len(seen) != len(teacher_names):
        raise ValueError(f'the bundle has {len(seen)} projector(s) (projs.0..), the model '
                         f'{len(teacher_names)} teacher(s) {list(teacher_names)}: they pair up in '
                         'order, so their numbers must be equal')
    return out


def convert_official_bundle(checkpoint: Dict[str, Any],
                            teacher_names: Optional[Sequence[str]] = None) -> Dict[str, Tensor]:
    """An official GEAR bundle -> one state dict under gear's stage-model names (table above).

    Args:
        checkpoint: the bundle (``is_official_bundle``).
        teacher_names: the teachers of the model being loaded, in config order; needed only to
            name the projectors (without them ``projectors`` is left out).

    Raises:
        ValueError / KeyError: an entry that is not what its name says, or an unknown entry
            (both named).
    """
    out: Dict[str, Tensor] = {}
    unknown = []
    for entry, value in checkpoint.items():
        if entry in TOKENIZER_ENTRIES:
            prefix = TOKENIZER_ENTRIES[entry]
            sd = convert_tokenizer(checkpoint, key=entry, prefer_ema=False)[1]
        elif entry in AR_ENTRIES:
            prefix, sd = AR_ENTRIES[entry], convert_llamagen_gpt(checkpoint, key=entry)
        elif entry == 'discriminator':
            prefix, sd = 'discriminator', convert_discriminator(value)
        elif entry == 'projectors':
            if teacher_names is None:
                continue
            prefix, sd = 'prior', convert_projectors(value, teacher_names)
        elif NOT_WEIGHTS.search(entry):
            continue
        else:
            unknown.append(entry)
            continue
        out.update({f'{prefix}.{k}': v for k, v in sd.items()})
        if entry in EMA_COUNTERS:
            out[EMA_COUNTERS[entry]] = torch.tensor(max(int(checkpoint.get('steps') or 0), 1))
    if unknown:
        raise KeyError(f'unknown entries {sorted(unknown)} in an official GEAR bundle (known: '
                       f'{sorted([*TOKENIZER_ENTRIES, *AR_ENTRIES, "discriminator", "projectors"])}, '
                       'opt_*, sched_*, args, steps)')
    return out
