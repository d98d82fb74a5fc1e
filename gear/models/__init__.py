"""gear's models: components (tokenizers, quantizers, AR backbones, read-outs, alignment,
losses, discriminators) and the stage models (warm-up, GEAR, frozen-tokenizer AR)."""
from . import align, ar, discriminators, losses, quantizers, readouts, tokenizers  # noqa: F401
from .frozen_tokenizer_ar import FrozenTokenizerAR
from .gear_end_to_end import GEAREndToEnd
from .gear_model import GEAR
from .prior import Prior
from .tokenizer_warmup import TokenizerWarmup

__all__ = ['FrozenTokenizerAR', 'GEAR', 'GEAREndToEnd', 'Prior', 'TokenizerWarmup']
