"""Perceptual losses: LPIPS (formula and weight loading) and ST-LPIPS (the offline default).

LPIPS is checked against the ``lpips`` package with a random VGG trunk copied into ours, so the
formula and the head loading are tested without ImageNet weights. ST-LPIPS uses the weights that
ship with ``stlpips-pytorch``; its README example images do not ship, so it is checked by
properties on a real photo (foolbox's bundled ImageNet samples).
"""
import pathlib
import socket
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gear.models.losses import LPIPS, STLPIPS
from gear.registry import LOSSES


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve or connect fails at once."""
    def refuse(*args, **kwargs):
        raise OSError('network access attempted in a test')
    monkeypatch.setattr(socket, 'getaddrinfo', refuse)
    monkeypatch.setattr(socket.socket, 'connect', refuse)


def _real_image(size=64, index=0):
    """A real colour photo, (1, 3, size, size) in [-1, 1]."""
    foolbox = pytest.importorskip('foolbox')
    from PIL import Image
    path = sorted((pathlib.Path(foolbox.__file__).parent / 'data').glob('imagenet_*.jpg'))[index]
    img = Image.open(path).convert('RGB').resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1.0)
    return x.permute(2, 0, 1)[None]


class Owner(nn.Module):
    """A tokenizer-like owner holding a perceptual loss."""

    def __init__(self, perceptual):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.perceptual = perceptual


# ---------------------------------------------------------------- LPIPS (VGG, ImageNet trunk)
@pytest.fixture(scope='module')
def lpips_pair(tmp_path_factory):
    """(reference lpips.LPIPS with a random trunk, our LPIPS loaded with that trunk)."""
    lpips = pytest.importorskip('lpips')
    torch.manual_seed(0)
    ref = lpips.LPIPS(net='vgg', pretrained=True, pnet_rand=True, verbose=False).eval()
    # lpips names the trunk net.slice{k}.{i}.*, i being the index in torchvision's vgg16.features
    feats = {f"features.{k.split('.', 1)[1]}": v.clone()
             for k, v in ref.net.state_dict().items()}
    path = tmp_path_factory.mktemp('vgg') / 'vgg16_random_features.pth'
    torch.save(feats, path)
    return ref, LPIPS(vgg_weights=str(path)), str(path)


def test_lpips_matches_reference_package(lpips_pair):
    ref, ours, _ = lpips_pair
    torch.manual_seed(1)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    with torch.no_grad():
        expected = ref(x, y).flatten()
        got = ours.distance(x, y)
        loss = ours(x, y)
    assert got.shape == (3,)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert loss.item() == pytest.approx(expected.mean().item(), rel=1e-5)
    assert ours.distance(x, x).abs().max().item() < 1e-6


def test_lpips_explicit_lin_weights_and_frozen(lpips_pair):
    lpips = pytest.importorskip('lpips')
    _, ours, vgg_path = lpips_pair
    lin_path = pathlib.Path(lpips.__file__).parent / 'weights' / 'v0.1' / 'vgg.pth'
    other = LPIPS(vgg_weights=vgg_path, lin_weights=str(lin_path), loss_weight=2.0)
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert other(x, y).item() == pytest.approx(2.0 * ours(x, y).item(), rel=1e-5)
    owner = Owner(other).train()
    assert not other.training and all(not p.requires_grad for p in other.parameters())
    assert all(not k.startswith('perceptual.') for k in owner.state_dict())
    x.requires_grad_(True)
    other(x, y).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_lpips_backward_goes_through_the_trunk_for_the_reconstruction_only(lpips_pair):
    """A training loss (reconstruction with a gradient, target without): the target's trunk
    pass runs without autograd, so the backward's convolutions cover B images, not 2B; the
    value and the gradient are those of the one-pass form (both inputs needing a gradient)."""
    from gear.utils.flops import flop_counter
    _, ours, _ = lpips_pair
    torch.manual_seed(2)
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    runs = []
    noise = 0.2 * torch.randn_like(target)
    for target_grad in (False, True):
        pred = (target + noise).requires_grad_(True)  # (B, 3, H, W), the reconstruction
        tgt = target.clone().requires_grad_(target_grad)
        with flop_counter() as counter:
            loss = ours(pred, tgt)
            loss.backward()
        backward = counter.get_flop_counts()['Global'][torch.ops.aten.convolution_backward]
        runs.append((loss.detach(), pred.grad, backward))
    (loss, grad, backward), (loss_ref, grad_ref, backward_ref) = runs
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-4, atol=1e-8)
    # both count the five 1x1 heads' input gradients once, 2 B C_l H_l W_l each; the trunk's
    # backward convolutions cover B images here and 2B in the one-pass form
    heads = sum(2 * 2 * c * (32 // 2 ** l) ** 2 for l, c in enumerate((64, 128, 256, 512, 512)))
    assert 2 * (backward - heads) == backward_ref - heads


def test_lpips_missing_vgg_weights_names_path():
    with pytest.raises(FileNotFoundError, match=r"/nonexistent/vgg\.pth.*vgg_weights="):
        LPIPS(vgg_weights='/nonexistent/vgg.pth')


def test_lpips_missing_lin_weights_names_path(tmp_path):
    bad = tmp_path / 'nope' / 'lin.pth'
    with pytest.raises(FileNotFoundError, match='lin_weights='):
        LPIPS(vgg_weights='/nonexistent/vgg.pth', lin_weights=str(bad))
    with pytest.raises(FileNotFoundError) as err:
        LPIPS(lin_weights=str(bad))
    assert str(bad) in str(err.value)


def test_lpips_hub_download_failure_names_url_and_cache(monkeypatch, tmp_path, no_network):
    pytest.importorskip('lpips')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    with pytest.raises(RuntimeError) as err:
        LPIPS()
    msg = str(err.value)
    assert 'https://download.pytorch.org/models/vgg16-397923af.pth' in msg
    assert str(tmp_path / 'hub' / 'checkpoints') in msg and 'vgg_weights=' in msg


def test_lpips_unknown_net():
    with pytest.raises(ValueError, match="'alex'"):
        LPIPS(net='alex')


# ---------------------------------------------------------------- ST-LPIPS (offline default)
@pytest.fixture(scope='module')
def st_alex():
    return STLPIPS(net='alex')


def test_stlpips_constructs_offline_and_fast(no_network):
    start = time.perf_counter()
    metric = LOSSES.build(dict(type='STLPIPS', net='alex', loss_weight=1.0))
    assert time.perf_counter() - start < 20.0
    assert isinstance(metric, STLPIPS)
    # the import-time placeholders for IPython / torchsummary do not leak into sys.modules
    for name in ('IPython', 'torchsummary'):
        mod = sys.modules.get(name)
        assert mod is None or getattr(mod, '__spec__', None) is not None


def test_stlpips_identity_and_symmetry(st_alex):
    x, y = _real_image(64, 0), _real_image(64, 1)
    with torch.no_grad():
        assert st_alex.distance(x, x).abs().item() < 1e-6
        dxy, dyx = st_alex.distance(x, y).item(), st_alex.distance(y, x).item()
    assert dxy > 0.1
    assert dxy == pytest.approx(dyx, rel=1e-5)


def test_stlpips_regression_value(st_alex):
    """Pinned on CPU (torch 2.14, stlpips-pytorch 0.0.2): foolbox imagenet_00 vs _01 at 64 px.

    The README pair (ex_p0.png / ex_ref.png, documented 0.7777555) does not ship with the package.
    """
    with torch.no_grad():
        d = st_alex.distance(_real_image(64, 0), _real_image(64, 1)).item()
    assert d == pytest.approx(0.49139, rel=1e-3)


def test_stlpips_grows_with_noise(st_alex):
    x = _real_image(64, 2).repeat(4, 1, 1, 1)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape[1:], generator=gen)
    sigmas = torch.tensor([0.02, 0.1, 0.3, 0.8]).view(4, 1, 1, 1)
    with torch.no_grad():
        d = st_alex.distance((x + sigmas * noise).clamp(-1, 1), x)  # (4,) one per noise level
    assert d.shape == (4,)
    assert torch.all(d[1:] > d[:-1]), d


def test_stlpips_shift_tolerant_more_than_noise(st_alex):
    """Its point: a 1-pixel shift costs much less than visible noise."""
    x = _real_image(64, 3)
    shifted = F.pad(x, (1, 0, 0, 0), mode='replicate')[..., :-1]
    gen = torch.Generator().manual_seed(0)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    with torch.no_grad():
        assert st_alex.distance(shifted, x).item() < st_alex.distance(noisy, x).item()


def test_stlpips_gradients_reach_input_not_weights(st_alex):
    owner = Owner(STLPIPS(net='alex', loss_weight=0.5)).train()
    metric = owner.perceptual
    assert not metric.training and not any(m.training for m in metric.modules())
    assert all(not p.requires_grad for p in metric.parameters())
    before = {k: v.clone() for k, v in metric.metric.state_dict().items()}
    target = _real_image(32, 4)
    pred = (target + 0.2 * torch.randn_like(target)).requires_grad_(True)
    loss = metric(owner.conv(pred), target)
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert owner.conv.weight.grad is not None
    assert all(p.grad is None for p in metric.parameters())
    with torch.no_grad():
        assert loss.item() == pytest.approx(
            0.5 * st_alex.distance(owner.conv(pred), target).item(), rel=1e-5)
    for k, v in metric.metric.state_dict().items():
        assert torch.equal(v, before[k])


def test_stlpips_not_in_owner_state_dict(st_alex):
    owner = Owner(st_alex)
    keys = list(owner.state_dict())
    assert keys == ['conv.weight', 'conv.bias']
    assert len(st_alex.state_dict()) == 0
    fresh = Owner(STLPIPS(net='alex'))
    fresh.load_state_dict(owner.state_dict(), strict=True)  # no perceptual keys expected


def test_stlpips_vgg_trunk():
    metric = STLPIPS(net='vgg')
    x, y = _real_image(32, 5), _real_image(32, 6)
    with torch.no_grad():
        assert metric.distance(x, x).abs().item() < 1e-6
        assert metric.distance(x, y).item() > 0.05


def test_stlpips_unknown_net():
    with pytest.raises(ValueError, match="'squeeze'"):
        STLPIPS(net='squeeze')
