"""Tokenizer reconstruction metric for mmengine's validation loop: L1, PSNR, SSIM and codebook
usage over the whole validation set.

``psnr`` / ``ssim`` follow LlamaGen's protocol (llamagen_metrics.py: uint8 reconstruction,
skimage's uniform 7 x 7 SSIM with data_range 2), the one model_zoo.md's quoted numbers use;
gear's own float-image PSNR and Gaussian 11 x 11 SSIM (functional.py) are ``psnr_float`` /
``ssim_gaussian11``.
"""
from typing import List, Sequence

import torch
from mmengine.evaluator import BaseMetric

from gear.models.quantizers.base import usage_from_counts
from gear.registry import METRICS

from .functional import psnr, ssim
from .llamagen_metrics import llamagen_psnr_ssim

KEYS = ('l1', 'psnr', 'ssim', 'psnr_float', 'ssim_gaussian11')


@METRICS.register_module()
class ReconstructionMetric(BaseMetric):
    """Reads ``gt_img``, ``pred_img`` (3, H, W) in [-1, 1] and ``indices`` from each prediction.

    Args:
        codebook_size (int, optional): when given, also report codebook usage / perplexity /
            entropy of the validation tokens.
        prefix (str): metric name prefix, e.g. ``val/recon_l1`` with prefix 'val'.
    """
    default_prefix = 'recon'

    def __init__(self, codebook_size: int = None, prefix: str = None, collect_device: str = 'cpu'):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.codebook_size = codebook_size

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        gt = torch.stack([s['gt_img'] for s in data_samples]).float()      # (B, 3, H, W)
        pred = torch.stack([s['pred_img'] for s in data_samples]).float()  # (B, 3, H, W)
        gt01, pred01 = (gt.clamp(-1, 1) + 1) / 2, (pred.clamp(-1, 1) + 1) / 2
        l1 = (pred - gt).abs().flatten(1).mean(1)                          # (B,) in [-1,1] units
        p, s = llamagen_psnr_ssim(pred, gt)                                # (B,) each
        p_float, s_gauss = psnr(pred01, gt01), ssim(pred01, gt01)          # (B,) each
        for i, sample in enumerate(data_samples):
            result = dict(l1=float(l1[i]), psnr=float(p[i]), ssim=float(s[i]),
                          psnr_float=float(p_float[i]), ssim_gaussian11=float(s_gauss[i]))
            if self.codebook_size is not None and 'indices' in sample:
                result['counts'] = torch.bincount(sample['indices'].reshape(-1),
                                                  minlength=self.codebook_size)
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> dict:
        n = len(results)
        metrics = {k: sum(r[k] for r in results) / n for k in KEYS}
        if results and 'counts' in results[0]:
            counts = torch.stack([r['counts'] for r in results]).sum(0).float()
            metrics.update({f'codebook_{k}': float(v) for k, v in usage_from_counts(counts).items()})
        return metrics
