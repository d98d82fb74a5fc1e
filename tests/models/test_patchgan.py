"""PatchGAN discriminator: output shapes, parameter count, init."""
import pytest
import torch
from torch import nn

from gear.models.discriminators import PatchGANDiscriminator
from gear.registry import DISCRIMINATORS


def _expected_params(in_ch=3, c=64, n=3, norm=True):
    """Count by formula: conv weights c_in*c_out*16, bias where no norm, norm weight+bias."""
    total = in_ch * c * 16 + c  # first conv has a bias
    mult = 1
    for k in range(1, n + 1):
        prev, mult = mult, min(2 ** k, 8)
        total += c * prev * c * mult * 16 + (2 * c * mult if norm else c * mult)
    total += c * mult * 1 * 16 + 1  # final conv to one channel, with bias
    return total


@pytest.mark.parametrize('size,out', [(32, 2), (64, 6), (256, 30)])
def test_output_shapes(size, out):
    disc = PatchGANDiscriminator()
    with torch.no_grad():
        y = disc(torch.rand(2, 3, size, size) * 2 - 1)
    assert y.shape == (2, 1, out, out)


def test_param_count_default():
    disc = DISCRIMINATORS.build(dict(type='PatchGANDiscriminator'))
    n = sum(p.numel() for p in disc.parameters())
    assert n == _expected_params() == 2_765_633  # taming's NLayerDiscriminator


def test_param_count_no_norm_and_other_config():
    disc = PatchGANDiscriminator(in_channels=1, base_channels=16, num_layers=4, norm='none')
    assert not any(isinstance(m, nn.BatchNorm2d) for m in disc.modules())
    n = sum(p.numel() for p in disc.parameters())
    assert n == _expected_params(1, 16, 4, norm=False)
    assert disc(torch.zeros(1, 1, 64, 64)).shape == (1, 1, 2, 2)


def test_layout_and_init():
    torch.manual_seed(0)
    disc = PatchGANDiscriminator()
    convs = [m for m in disc.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in disc.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [m.stride[0] for m in convs] == [2, 2, 2, 1, 1]
    assert [m.out_channels for m in convs] == [64, 128, 256, 512, 1]
    assert [m.bias is not None for m in convs] == [True, False, False, False, True]
    assert len(bns) == 3
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    g = torch.cat([m.weight for m in bns])
    assert g.mean().item() == pytest.approx(1.0, abs=5e-3) and g.std().item() == pytest.approx(
        0.02, rel=0.15)
    assert all(torch.all(m.bias == 0) for m in bns)


def test_unknown_norm():
    with pytest.raises(ValueError, match="'group'"):
        PatchGANDiscriminator(norm='group')
