"""Metrics: tokenizer reconstruction (L1, PSNR, SSIM, codebook usage), means of per-sample
validation scalars (AR loss, alignment)."""
from .functional import psnr, ssim
from .mean_metric import MeanMetric
from .reconstruction import ReconstructionMetric

__all__ = ['MeanMetric', 'ReconstructionMetric', 'psnr', 'ssim']
