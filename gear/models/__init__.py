"""gear's models: components (tokenizers, quantizers, AR backbones, read-outs, alignment,
losses, discriminators) and the stage models (warm-up, GEAR, its end-to-end ablation,
frozen-tokenizer AR), each one class on ``StageModel``."""
from . import align, ar, discriminators, losses, quantizers, readouts, text, tokenizers  # noqa: F401
from .frozen_tokenizer_ar import FrozenTokenizerAR
from .gear import GEAR
from .gear_end_to_end import GEAREndToEnd
from .prior import Prior
from .stage_model import StageModel
from .tokenizer_warmup import TokenizerWarmup

__all__ = ['FrozenTokenizerAR', 'GEAR', 'GEAREndToEnd', 'Prior', 'StageModel', 'TokenizerWarmup']
