"""Discriminators for the adversarial term of the tokenizer loss."""
from .patchgan import PatchGANDiscriminator

__all__ = ['PatchGANDiscriminator']
