"""The ``fp32`` flags of losses and quantizers: float32 inside bf16 autocast when asked."""
import pytest
import torch
import torch.nn.functional as F

from gear.models.losses import STLPIPS, GANLoss, L1Loss
from gear.models.losses.precision import fp32_region
from gear.models.quantizers import VectorQuantizer


def bf16():
    return torch.autocast('cpu', dtype=torch.bfloat16)


def test_fp32_region_casts_and_disables_autocast():
    a, idx = torch.randn(3, 4).bfloat16(), torch.arange(3)
    with bf16(), fp32_region(a, idx) as (a32, idx2):
        assert a32.dtype == torch.float32 and idx2.dtype == torch.long
        assert (a32 @ a32.T).dtype == torch.float32  # autocast is off inside
    with bf16(), fp32_region(a, enabled=False) as (same,):
        assert same is a and (same.float() @ same.float().T).dtype == torch.bfloat16


@pytest.mark.parametrize('fp32', [True, False])
def test_gan_and_pixel_losses(fp32):
    logits = torch.randn(2, 1, 30, 30).bfloat16()
    gan, l1 = GANLoss(fp32=fp32), L1Loss(fp32=fp32)
    with bf16():
        d = gan.discriminator_loss(logits, -logits)
        g = gan.generator_loss(logits, step=0)
        r = l1(logits, -logits)
    want = torch.float32 if fp32 else torch.bfloat16
    assert d.dtype == want and g.dtype == want
    assert r.dtype == torch.float32  # both: l1_loss is on autocast's float32 list
    # outside autocast nothing casts for the loss: the flag alone decides the precision
    r = l1(logits, -logits)
    assert r.dtype == want
    if fp32:
        assert torch.equal(r, F.l1_loss(logits.float(), -logits.float()))
    ref = gan.discriminator_loss(logits.float(), -logits.float())
    assert torch.allclose(d.float(), ref, rtol=1e-2)


@pytest.mark.parametrize('fp32', [True, False])
def test_quantizer_distances(fp32):
    torch.manual_seed(0)
    q = VectorQuantizer(codebook_size=64, embed_dim=8, fp32=fp32)
    z = torch.randn(2, 8, 4, 4)
    with bf16():
        out = q(z)
    exact = q(z).d  # outside autocast
    if fp32:
        assert out.d.dtype == torch.float32 and torch.equal(out.d, exact)
    else:  # the z.e product ran in bf16: ~2-3 significant digits
        assert not torch.equal(out.d.float(), exact)
        assert torch.allclose(out.d.float(), exact, atol=0.05)


def test_stlpips_fp32_flag_matches_float32():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    ref = STLPIPS(net='alex').distance(x, y)
    with bf16():
        exact = STLPIPS(net='alex', fp32=True).distance(x, y)
        fast = STLPIPS(net='alex', fp32=False).distance(x, y)
    torch.testing.assert_close(exact, ref)
    assert exact.dtype == fast.dtype == torch.float32
    assert torch.allclose(fast, ref, rtol=0.1) and not torch.equal(fast, ref)


def test_lpips_without_weight_files():
    """pretrained_source='none': random VGG trunk and heads, same graph (benchmarks only)."""
    from gear.models.losses import LPIPS
    torch.manual_seed(0)
    loss = LPIPS(pretrained_source='none')
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0.0 and loss(x, -x).item() > 0
    with pytest.raises(ValueError, match="pretrained_source.*'hub'"):
        LPIPS(pretrained_source='hub')


def _conv_layouts(module: torch.nn.Module, call) -> set:
    """Whether the inputs of ``module``'s 3x3 / 4x4 convolutions were channels-last during
    ``call()``: the set of the flags seen."""
    seen, hooks = set(), []
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1:
            hooks.append(m.register_forward_hook(lambda mod, args, out: seen.add(
                args[0].is_contiguous(memory_format=torch.channels_last)
                and not args[0].is_contiguous())))
    try:
        call()
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.mark.parametrize('layout', ['nhwc', 'nchw', 'auto'])
def test_convolutions_run_channels_last_under_cpu_autocast_only(layout, monkeypatch):
    """The VQ tokenizer (encoder and decoder), PatchGAN and LPIPS-VGG convolve NHWC inputs in a
    bf16 CPU autocast where that layout is chosen (GEAR_CPU_BF16_LAYOUT; by default on a CPU
    without oneDNN bf16 kernels), NCHW ones otherwise and always in float32 (whose numbers are
    those of plain NCHW modules)."""
    from gear.models.discriminators import PatchGANDiscriminator
    from gear.models.losses import LPIPS
    from gear.models.losses.precision import LAYOUT_ENV, native_cpu_bf16
    from gear.models.tokenizers import VQTokenizer
    monkeypatch.setenv(LAYOUT_ENV, layout)
    nhwc = layout == 'nhwc' or (layout == 'auto' and not native_cpu_bf16())
    torch.manual_seed(0)
    tok = VQTokenizer(ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=32,
                      quantizer=dict(type='VectorQuantizer', codebook_size=16, embed_dim=4))
    nets = dict(tokenizer=(tok, lambda x: tok(x)[0]),
                discriminator=(PatchGANDiscriminator(base_channels=16), None),
                lpips=(LPIPS(pretrained_source='none'), lambda x: LPIPS.distance(
                    nets['lpips'][0], x, x.flip(0))))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for name, (net, fn) in nets.items():
        fn = fn or net
        with bf16():
            assert _conv_layouts(net, lambda: fn(x)) == {nhwc}, name
        assert _conv_layouts(net, lambda: fn(x)) == {False}, name
    with bf16():
        assert tok(x)[0].is_contiguous(memory_format=torch.channels_last) == nhwc  # (B, 3, H, W)
    assert tok(x)[0].is_contiguous()


def test_a_bad_layout_choice_names_the_variable(monkeypatch):
    from gear.models.losses.precision import LAYOUT_ENV, autocast_channels_last
    monkeypatch.setenv(LAYOUT_ENV, 'NHWC ')
    with bf16(), pytest.raises(ValueError, match=f"{LAYOUT_ENV}='NHWC ': one of auto, nhwc, nchw"):
        autocast_channels_last(torch.zeros(1, 3, 4, 4))
