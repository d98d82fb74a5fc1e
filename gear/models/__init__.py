"""gear's models: components (tokenizers, quantizers, losses, discriminators) and the stage models."""
from . import discriminators, losses, quantizers, tokenizers  # noqa: F401  (registers members)
from .tokenizer_warmup import TokenizerWarmup

__all__ = ['TokenizerWarmup']
