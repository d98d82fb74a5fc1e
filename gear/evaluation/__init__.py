"""Metrics: tokenizer reconstruction (L1, PSNR, SSIM, codebook usage)."""
from .functional import psnr, ssim
from .reconstruction import ReconstructionMetric

__all__ = ['ReconstructionMetric', 'psnr', 'ssim']
