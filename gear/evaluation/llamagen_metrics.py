"""Reconstruction PSNR and SSIM on LlamaGen's protocol, batched in torch (CPU or GPU).

The tokenizer PSNR / SSIM that papers quote (model_zoo.md) come from LlamaGen's
``tokenizer/tokenizer_image/reconstruction_vq_ddp.py``, which per image does:

- reconstruction ``samples`` in [-1, 1] -> ``clamp(127.5 * samples + 128.0, 0, 255)`` -> uint8
  (a truncating cast; +128.0, not +127.5) -> ``rgb_restored = uint8 / 255.`` (float32);
- ground truth ``rgb_gt = (x + 1.0) / 2.0`` (float32, NOT quantised);
- ``skimage.metrics.peak_signal_noise_ratio(rgb_restored, rgb_gt)``: data range 1, inferred by
  skimage from the float dtype of the (non-negative) first argument;
- ``skimage.metrics.structural_similarity(rgb_restored, rgb_gt, multichannel=True,
  data_range=2.0, channel_axis=-1)``: a 7 x 7 uniform window, sample covariance (N / (N - 1)),
  K1 0.01, K2 0.03, the mean over the positions whose window lies inside the image (skimage
  crops the 3-pixel border) and then over channels. ``data_range=2.0`` on [0, 1] images is their
  quirk (C1, C2 four times Wang et al.'s), reproduced because the quoted numbers carry it.
  scikit-image 0.26 silently ignores ``multichannel=True``; ``channel_axis=-1`` alone is the
  same call;
- the mean over images.

gear reports these as ``psnr`` / ``ssim``; its own float-image PSNR and Gaussian 11 x 11 SSIM
(``functional.py``) as ``psnr_float`` / ``ssim_gaussian11``. tests/evaluation/
test_llamagen_metrics.py checks parity with scikit-image called exactly as LlamaGen calls it.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

WIN_SIZE = 7        # skimage's default window for uniform weights
DATA_RANGE = 2.0    # LlamaGen's SSIM data_range (on [0, 1] images)
K1, K2 = 0.01, 0.03

RECON_PROTOCOL = dict(
    psnr='LlamaGen: reconstruction quantised to uint8 (clamp(127.5 x + 128, 0, 255), truncated) '
         '/ 255 vs float ground truth (x + 1) / 2, data range 1, mean over images',
    ssim='LlamaGen: skimage structural_similarity of those images, uniform 7x7 window, sample '
         'covariance, data_range=2.0, valid region, mean over channels and images',
    psnr_float='gear: unquantised (clamp(x, -1, 1) + 1) / 2 images, data range 1, mean over images',
    ssim_gaussian11='gear: Gaussian 11x11 window (sigma 1.5), population covariance, data range '
                    '1, unquantised images, valid region, mean over channels and images')


def llamagen_images(pred: Tensor, target: Tensor) -> Tuple[Tensor, Tensor]:
    """(restored, gt), each (B, 3, H, W) float32 in [0, 1], from images in [-1, 1]: the
    reconstruction quantised to uint8 as LlamaGen does, the ground truth left in float."""
    restored = torch.clamp(127.5 * pred.float() + 128.0, 0, 255).to(torch.uint8)  # truncates
    return restored.float() / 255.0, (target.float() + 1.0) / 2.0


def llamagen_psnr_ssim(pred: Tensor, target: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-image PSNR (dB) and SSIM, each (B,) float64, of reconstructions ``pred`` against
    ``target``, both (B, C, H, W) in [-1, 1], H and W at least 7. A reconstruction equal to its
    ground truth has PSNR inf, as in skimage."""
    if min(pred.shape[-2:]) < WIN_SIZE:
        raise ValueError(f'SSIM needs images of at least {WIN_SIZE} x {WIN_SIZE}, got '
                         f'{tuple(pred.shape[-2:])}')
    restored, gt = (x.double() for x in llamagen_images(pred, target))  # (B, C, H, W) each
    mse = (restored - gt).pow(2).flatten(1).mean(1)  # (B,)
    psnr = 10 * torch.log10(1.0 / mse)
    return psnr, _uniform_ssim(restored, gt)


def _uniform_ssim(x: Tensor, y: Tensor) -> Tensor:
    """skimage's default SSIM (uniform window, sample covariance) with LlamaGen's data range,
    (B,), over the valid positions (B, C, H - 6, W - 6) and then the channels."""
    mean = lambda t: F.avg_pool2d(t, WIN_SIZE, stride=1)  # noqa: E731  (B, C, H - 6, W - 6)
    n = WIN_SIZE ** 2
    cov_norm = n / (n - 1)
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s.flatten(2).mean(2).mean(1)  # (B, C) -> (B,)
