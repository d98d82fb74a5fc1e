"""Image-quality functions on batches in [0, 1]: PSNR and SSIM (Wang et al. 2004, Gaussian
window 11, sigma 1.5, K1 0.01, K2 0.03, averaged over channels and positions).

gear's own definitions, on unquantised images: the reconstruction metric reports them as
``psnr_float`` / ``ssim_gaussian11``; its ``psnr`` / ``ssim`` are LlamaGen's (llamagen_metrics.py).
"""
import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, target: Tensor, eps: float = 1e-10) -> Tensor:
    """Per-image PSNR in dB, (B,), for images in [0, 1]."""
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / (mse + eps))


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    window = g[:, None] * g[None, :]                        # (size, size)
    return window.expand(channels, 1, size, size).contiguous()  # (C, 1, size, size)


def ssim(pred: Tensor, target: Tensor, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-image SSIM, (B,), for images in [0, 1] (valid convolution, no padding)."""
    c = pred.shape[1]
    w = _gaussian_window(window_size, sigma, c, pred.device, pred.dtype)
    mu_x = F.conv2d(pred, w, groups=c)
    mu_y = F.conv2d(target, w, groups=c)
    var_x = F.conv2d(pred * pred, w, groups=c) - mu_x ** 2
    var_y = F.conv2d(target * target, w, groups=c) - mu_y ** 2
    cov = F.conv2d(pred * target, w, groups=c) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1)
