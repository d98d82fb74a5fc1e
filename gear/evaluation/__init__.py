"""Metrics: tokenizer reconstruction (L1, PSNR and SSIM on LlamaGen's protocol and gear's own,
codebook usage), means of per-sample validation scalars (AR loss, alignment), and generative
metrics (FID with the TF-Inception network, precision / recall, Inception Score where the network
has logits)."""
from .fid import (ReferenceStats, feature_statistics, frechet_distance,
                  frechet_distance_from_features, load_or_compute_reference, load_reference_npz,
                  reference_key)
from .feature_analysis import feature_alignment, linear_cka, mean_patch_cosine
from .functional import psnr, ssim
from .generative import compute_generative_metrics, inception_score
from .inception import InceptionFeatures
from .llamagen_metrics import llamagen_psnr_ssim
from .mean_metric import MeanMetric
from .precision_recall import precision_recall
from .reconstruction import ReconstructionMetric

__all__ = ['InceptionFeatures', 'MeanMetric', 'ReconstructionMetric', 'ReferenceStats',
           'compute_generative_metrics', 'feature_alignment', 'feature_statistics', 'frechet_distance',
           'frechet_distance_from_features', 'inception_score', 'load_or_compute_reference',
           'linear_cka', 'llamagen_psnr_ssim', 'load_reference_npz', 'mean_patch_cosine',
           'precision_recall', 'psnr', 'reference_key', 'ssim']
