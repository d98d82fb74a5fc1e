"""PSNR / SSIM parity: gear's batched LlamaGen-protocol metric equals scikit-image called exactly
as LlamaGen's ``tokenizer/tokenizer_image/reconstruction_vq_ddp.py`` calls it, per image, on real
images (Fashion-MNIST test images, scikit-image's astronaut / chelsea / coffee photos) with
realistic reconstructions (blurred, noisy, slightly off in brightness and beyond [-1, 1]), to
1e-5 absolute in PSNR (dB) and SSIM.
"""
import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gear.datasets import FashionMNIST
from gear.evaluation import ReconstructionMetric, llamagen_psnr_ssim, psnr, ssim
from gear.evaluation.llamagen_metrics import llamagen_images

TOL = 1e-5
# (blur sigma in px, noise std and brightness shift in [-1, 1] units) per reconstruction
DISTORTIONS = ((0.5, 0.02, 0.0), (1.0, 0.05, 0.03), (1.5, 0.1, -0.05), (2.5, 0.2, 0.1))


def llamagen_reference(pred: torch.Tensor, target: torch.Tensor):
    """LlamaGen's per-image loop, verbatim but for the names: (psnr list, ssim list)."""
    samples = torch.clamp(127.5 * pred + 128.0, 0, 255).permute(0, 2, 3, 1).to(
        'cpu', dtype=torch.uint8).numpy()                           # (B, H, W, 3) uint8
    gts = (target.permute(0, 2, 3, 1).to('cpu').numpy() + 1.0) / 2.0  # (B, H, W, 3) float32
    psnrs, ssims = [], []
    for sample, rgb_gt in zip(samples, gts):
        rgb_restored = sample.astype(np.float32) / 255.
        psnrs.append(peak_signal_noise_ratio(rgb_restored, rgb_gt))
        ssims.append(structural_similarity(rgb_restored, rgb_gt, multichannel=True,
                                           data_range=2.0, channel_axis=-1))
    return np.array(psnrs), np.array(ssims)


def reconstructions(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Each image of ``x`` (N, 3, H, W) in [-1, 1] under every DISTORTIONS entry,
    (N * len(DISTORTIONS), 3, H, W), image-major."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for sigma, noise, shift in DISTORTIONS:
        r = int(3 * sigma + 0.5)
        t = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-t ** 2 / (2 * sigma ** 2))
        k = (k / k.sum())[:, None] * (k / k.sum())[None, :]           # (2r+1, 2r+1)
        k = k.expand(3, 1, *k.shape)                                  # (3, 1, 2r+1, 2r+1)
        blurred = F.conv2d(F.pad(x, (r,) * 4, mode='replicate'), k, groups=3)  # (N, 3, H, W)
        out.append(blurred + shift + noise * torch.randn(x.shape, generator=g))
    return torch.stack(out, 1).flatten(0, 1)                          # (N * D, 3, H, W)


def fashion_images(root: str) -> torch.Tensor:
    data = FashionMNIST(root, split='test', resolution=32, num_samples=16)
    return torch.stack([data[i]['img'] for i in range(len(data))]).float()  # (16, 3, 32, 32)


def photo(name: str) -> torch.Tensor:
    img = getattr(skimage.data, name)()                               # (H, W, 3) uint8
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1  # (1, 3, H, W)


def assert_parity(target: torch.Tensor, label: str) -> None:
    pred = reconstructions(target)                                    # (N * D, 3, H, W)
    target = target.repeat_interleave(len(DISTORTIONS), 0)            # (N * D, 3, H, W)
    p, s = llamagen_psnr_ssim(pred, target)
    ref_p, ref_s = llamagen_reference(pred, target)
    dp, ds = np.abs(p.numpy() - ref_p).max(), np.abs(s.numpy() - ref_s).max()
    print(f'{label}: max |PSNR diff| {dp:.2e} dB, max |SSIM diff| {ds:.2e}, PSNR '
          f'{ref_p.min():.1f}..{ref_p.max():.1f}, SSIM {ref_s.min():.3f}..{ref_s.max():.3f}')
    assert dp < TOL and ds < TOL, (label, dp, ds)


def test_parity_with_llamagen_on_fashion_mnist(fashion_mnist_root):
    assert_parity(fashion_images(fashion_mnist_root), 'fashion-mnist')


@pytest.mark.parametrize('name', ['astronaut', 'chelsea', 'coffee'])
def test_parity_with_llamagen_on_skimage_photos(name):
    assert_parity(photo(name), name)


def test_quantisation_and_data_range_are_llamagen_s():
    """+128 and truncation: a reconstruction equal to uint8-valued ground truth is restored
    exactly (x = u / 127.5 - 1 -> u + 0.5 -> u); data_range 2 makes the SSIM of a constant
    shift the luminance term with C1 = (0.01 * 2) ** 2."""
    u = torch.arange(256, dtype=torch.float32).repeat(3, 16, 1)[None]  # (1, 3, 16, 256)
    x = u / 127.5 - 1
    restored, gt = llamagen_images(x, x)
    assert torch.equal(restored * 255, u) and torch.allclose(gt * 255, u, atol=1e-4)
    assert llamagen_psnr_ssim(x, x)[0].item() > 100
    flat = torch.zeros(1, 3, 16, 16)                                  # gt 0.5
    shifted = torch.full_like(flat, (153 - 128) / 127.5)              # restored 153 / 255
    mu_x, mu_y, c1 = 153 / 255, 0.5, (0.01 * 2) ** 2
    expected = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)
    assert llamagen_psnr_ssim(shifted, flat)[1].item() == pytest.approx(expected, abs=1e-7)
    with pytest.raises(ValueError, match='at least 7'):
        llamagen_psnr_ssim(torch.zeros(1, 3, 6, 6), torch.zeros(1, 3, 6, 6))


def test_reconstruction_metric_reports_both_protocols(fashion_mnist_root):
    gt = fashion_images(fashion_mnist_root)[:4]                       # (4, 3, 32, 32)
    pred = reconstructions(gt)[::len(DISTORTIONS)]                    # (4, 3, 32, 32)
    metric = ReconstructionMetric()
    metric.process(None, [dict(gt_img=g, pred_img=p) for g, p in zip(gt, pred)])
    out = metric.compute_metrics(metric.results)
    ref_p, ref_s = llamagen_reference(pred, gt)
    assert out['psnr'] == pytest.approx(ref_p.mean(), abs=TOL)
    assert out['ssim'] == pytest.approx(ref_s.mean(), abs=TOL)
    gt01, pred01 = (gt + 1) / 2, (pred.clamp(-1, 1) + 1) / 2
    assert out['psnr_float'] == pytest.approx(float(psnr(pred01, gt01).mean()), rel=1e-6)
    assert out['ssim_gaussian11'] == pytest.approx(float(ssim(pred01, gt01).mean()), rel=1e-6)
    assert out['ssim'] != pytest.approx(out['ssim_gaussian11'], abs=1e-3)  # they differ
