"""Which networks of a trained stage model generate images: its (AR backbone, tokenizer)."""
from typing import Tuple

from torch import nn


def generator_parts(model: nn.Module, use_ema: bool = True) -> Tuple[nn.Module, nn.Module]:
    """The (AR backbone, tokenizer) pair that generates images from ``model``.

    GEAR: the EMA prior's AR and the EMA tokenizer (``use_ema``), else the online ones.
    FrozenTokenizerAR: the EMA (or online) prior's AR and the frozen tokenizer.

    Raises:
        TypeError: ``model`` has no AR prior (e.g. a stage-0 ``TokenizerWarmup``).
    """
    if not all(hasattr(model, name) for name in ('prior', 'prior_ema', 'tokenizer')):
        raise TypeError(f'{type(model).__name__} cannot generate images: it has no AR prior '
                        '(sampling needs a GEAR or FrozenTokenizerAR model, stage 1 or 2)')
    prior = model.prior_ema.module if use_ema else model.prior
    tokenizer = model.tokenizer
    if use_ema and hasattr(model, 'tokenizer_ema'):  # GEAR trains its tokenizer; stage 2 does not
        tokenizer = model.tokenizer_ema.module
    return prior.ar, tokenizer


