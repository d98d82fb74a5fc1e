"""gear's own PSNR / SSIM (``psnr_float`` / ``ssim_gaussian11``) on known inputs, and the
reconstruction metric over a validation set (LlamaGen's ``psnr`` / ``ssim``:
test_llamagen_metrics.py)."""
import math

import torch

from gear.evaluation import ReconstructionMetric, psnr, ssim


def test_psnr_known_values():
    x = torch.zeros(2, 3, 8, 8)
    assert torch.allclose(psnr(x + 0.1, x), torch.full((2,), 20.0), atol=1e-4)  # mse 0.01
    assert torch.allclose(psnr(x + 0.01, x), torch.full((2,), 40.0), atol=1e-3)


def test_ssim_identity_and_monotone_in_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)
    noise = torch.randn(x.shape, generator=g)
    values = [float(ssim((x + s * noise).clamp(0, 1), x).mean()) for s in (0.05, 0.1, 0.2, 0.8)]
    assert values == sorted(values, reverse=True) and values[-1] < 0.5
    # SSIM of a constant shift c: luminance term (2 mu (mu + c) + C1) / (mu^2 + (mu + c)^2 + C1)
    flat = torch.full((1, 1, 16, 16), 0.5, dtype=torch.float64)  # no float32 cancellation
    expected = (2 * 0.5 * 0.6 + 1e-4) / (0.25 + 0.36 + 1e-4)
    assert math.isclose(float(ssim(flat + 0.1, flat)), expected, rel_tol=1e-4)


def test_metric_averages_over_all_samples_and_counts_codes():
    metric = ReconstructionMetric(codebook_size=4)
    gt = torch.zeros(4, 3, 16, 16)
    preds = [gt[0] + 0.2, gt[1] + 0.2, gt[2], gt[3]]  # L1 0.2, 0.2, 0, 0 in [-1, 1] units
    indices = [torch.tensor([[0, 1]]), torch.tensor([[1, 1]]), torch.tensor([[0, 0]]),
               torch.tensor([[1, 0]])]
    samples = [dict(gt_img=g, pred_img=p, indices=i) for g, p, i in zip(gt, preds, indices)]
    metric.process(None, samples[:2])
    metric.process(None, samples[2:])
    out = metric.compute_metrics(metric.results)
    assert math.isclose(out['l1'], 0.1, rel_tol=1e-5)
    assert {'psnr', 'ssim', 'psnr_float', 'ssim_gaussian11'} <= set(out)
    assert out['codebook_usage'] == 0.5  # codes 0 and 1 of 4
    assert math.isclose(out['codebook_perplexity'], 2.0, rel_tol=1e-5)  # 4 zeros, 4 ones
