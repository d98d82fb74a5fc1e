"""gear: Guided End-to-end AutoRegression (GEAR) for image synthesis.

A VQ image tokenizer and an autoregressive generator trained jointly, guided by representation
alignment. See README.md for the pipeline and DESIGN notes for the code layout.
"""
from .version import __version__

__all__ = ['__version__']
