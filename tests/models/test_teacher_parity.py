"""The timm teachers against the official GEAR release (src/repa_encoders/, train_gear.sh).

Small random ViTs of each preset's timm family (``model_kwargs`` shrinks depth / width; weights
random, ``pretrained_source='none'``), so nothing is downloaded. Each test names the release
behaviour it pins: preprocessing (resize filter, antialias, mean / std), target normalisation,
input size, which tokens (final norm or not, intermediate block), and the teacher configs.
"""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from gear.engine.config_check import check_config
from gear.models.align import (TIMM_TEACHER_PRESETS, TimmTeacher, normalize_target,
                               spatial_zscore)
from gear.registry import ALIGN_ENCODERS

from ..conftest import REPO

TINY = dict(depth=3, embed_dim=32, num_heads=2)
# src/repa_encoders/_constants.py (IMAGENET_* from timm.data)
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
SIGLIP = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _teacher(name, seed=0, **kwargs):
    """A tiny random teacher of the preset's family. timm's init makes DINOv2's LayerScale 1e-5
    (blocks ~ identity) and every LayerNorm affine-free; set them so that a block or the final
    norm visibly changes the tokens (same values for the same seed)."""
    torch.manual_seed(seed)
    t = TimmTeacher(model_name=name, pretrained_source='none', model_kwargs=TINY, **kwargs)
    with torch.no_grad():
        for pname, p in t.model.named_parameters():
            if pname.endswith('gamma'):
                p.fill_(1.0)
        t.model.norm.weight.normal_(1.0, 0.5)
        t.model.norm.bias.normal_(0.0, 0.5)
    return t


def _images(size=256, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g) * 2 - 1  # [-1, 1]


def _normalize(x01, stats):
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in stats)
    return (x01 - mean) / std


# ------------------------------------------------------------------ preprocessing
def test_presets_hold_the_release_settings():
    """Release: dinov2 224 px / dinov3 256 / clip 224 / siglip2 256 (at 256 px training), the
    target spatial norm only for CLIP / SigLIP2 (train_gear.sh), CLIP before ln_post."""
    got = {k: (v.image_size, v.final_norm, v.target_norm)
           for k, v in TIMM_TEACHER_PRESETS.items()}
    assert got == {'dinov2_vitb14': (224, True, None), 'dinov3_vitb16': (256, True, None),
                   'clip_vitl14': (224, False, 'irepa_zscore'),
                   'siglip2_vitb16': (256, True, 'irepa_zscore')}
    # OpenAI CLIP uses QuickGELU; timm's non-quickgelu '.openai' tag would run plain GELU
    assert 'quickgelu' in TIMM_TEACHER_PRESETS['clip_vitl14'].timm_name
    assert TIMM_TEACHER_PRESETS['siglip2_vitb16'].timm_name.endswith('_256.v2_webli')


@pytest.mark.parametrize('name, stats', [('dinov2_vitb14', IMAGENET), ('dinov3_vitb16', IMAGENET),
                                         ('clip_vitl14', CLIP), ('siglip2_vitb16', SIGLIP)])
def test_mean_std_are_the_release_constants(name, stats):
    t = _teacher(name)
    torch.testing.assert_close(t.mean.flatten(), torch.tensor(stats[0]), rtol=0, atol=1e-7)
    torch.testing.assert_close(t.std.flatten(), torch.tensor(stats[1]), rtol=0, atol=1e-7)
    assert t.resize_mode == 'bicubic' and t.antialias is False


def test_dinov2_resize_is_bicubic_without_antialias():
    """dinov2.py preprocess: x / 255 -> ImageNet Normalize -> F.interpolate(x, 224, 'bicubic')."""
    t = _teacher('dinov2_vitb14')
    x = _images(256)
    x01 = (x + 1) / 2
    official = F.interpolate(_normalize(x01, IMAGENET), 224, mode='bicubic')  # release order
    hand = _normalize(F.interpolate(x01, size=(224, 224), mode='bicubic', align_corners=False,
                                    antialias=False), IMAGENET)
    out = t.preprocess(x)
    assert out.shape == (2, 3, 224, 224)
    torch.testing.assert_close(out, hand, rtol=0, atol=1e-6)
    torch.testing.assert_close(out, official, rtol=0, atol=1e-5)  # order: float rounding only
    antialiased = _normalize(F.interpolate(x01, size=(224, 224), mode='bicubic',
                                           align_corners=False, antialias=True), IMAGENET)
    assert (out - antialiased).abs().max() > 0.1  # a downscale: antialias changes the input


def test_clip_resize_then_clip_stats():
    """clip.py preprocess: x / 255 -> F.interpolate(x, 224, 'bicubic') -> CLIP Normalize."""
    t = _teacher('clip_vitl14')
    x = _images(256)
    official = _normalize(F.interpolate((x + 1) / 2, 224, mode='bicubic'), CLIP)
    torch.testing.assert_close(t.preprocess(x), official, rtol=0, atol=1e-6)


# ------------------------------------------------------------------ target normalisation
def test_irepa_zscore_hand_computed():
    """layer_extraction.spatial_norm: (z - 0.6 mean_L) / (std_L unbiased + 1e-6), per channel."""
    z = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [3.0, 6.0]]])  # (B=1, N=3, C=2)
    # channel 0: mean 2, shifted [-0.2, 0.8, 1.8], unbiased std 1
    # channel 1: mean 2, shifted [-1.2, -1.2, 4.8], unbiased std sqrt(24 / 2) = sqrt(12)
    s12 = 12 ** 0.5
    expected = torch.tensor([[[-0.2 / (1 + 1e-6), -1.2 / (s12 + 1e-6)],
                              [0.8 / (1 + 1e-6), -1.2 / (s12 + 1e-6)],
                              [1.8 / (1 + 1e-6), 4.8 / (s12 + 1e-6)]]])
    torch.testing.assert_close(normalize_target(z, 'irepa_zscore'), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(normalize_target(z, 'irepa_demean'),
                               torch.tensor([[[-0.2, -1.2], [0.8, -1.2], [1.8, 4.8]]]),
                               rtol=0, atol=1e-6)
    # gear's full z-score (biased variance inside the root, no alpha) stays available
    torch.testing.assert_close(normalize_target(z, 'zscore'), spatial_zscore(z))
    assert normalize_target(z, None) is z
    with pytest.raises(ValueError, match='target_norm'):
        normalize_target(z, 'spnorm')


@pytest.mark.parametrize('name, default', [('clip_vitl14', 'irepa_zscore'),
                                           ('siglip2_vitb16', 'irepa_zscore'),
                                           ('dinov2_vitb14', None), ('dinov3_vitb16', None)])
def test_target_norm_default_per_teacher(name, default):
    t, raw = _teacher(name), _teacher(name, target_norm=None)
    assert t.target_norm == default and raw.target_norm is None
    x = _images(256, batch=1)
    with torch.no_grad():
        y, r = t(x), raw(x)  # (1, 256, C)
    if default is None:
        torch.testing.assert_close(y, r, rtol=0, atol=0)
    else:
        mean, std = r.mean(dim=1, keepdim=True), r.std(dim=1, keepdim=True)
        torch.testing.assert_close(y, (r - 0.6 * mean) / (std + 1e-6), rtol=1e-5, atol=1e-5)
    z = _teacher(name, target_norm='zscore')(x)
    torch.testing.assert_close(z, spatial_zscore(r), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ input size, tokens
def test_dinov3_runs_native_256_on_a_16x16_grid_without_resampling():
    """dinov3.py: no resize (RoPE), 16 px patches -> 16 x 16 at 256 px; 1 + 4 prefix tokens."""
    t = _teacher('dinov3_vitb16')
    assert t.image_size == 256 and tuple(t.model.patch_embed.grid_size) == (16, 16)
    assert t.num_prefix_tokens == 5
    x = _images(256)
    pre = t.preprocess(x)
    torch.testing.assert_close(pre, _normalize((x + 1) / 2, IMAGENET), rtol=0, atol=1e-6)
    with torch.no_grad():
        fmap = t.extract(pre)  # (B, C, 16, 16): resample_grid leaves it as is
        tokens = t.model.forward_features(pre)[:, 5:]  # x_norm_patchtokens
    assert fmap.shape == (2, 32, 16, 16)
    torch.testing.assert_close(t(x), tokens)


def _run_blocks(model, x, n):
    """Embeddings, then the first n blocks of a timm VisionTransformer, by hand: (B, P + L, C)."""
    t = model.norm_pre(model._pos_embed(model.patch_embed(x)))
    for blk in list(model.blocks)[:n]:
        t = blk(t)
    return t


def test_clip_tokens_are_before_the_final_norm():
    """clip.py: transformer output without ln_post (timm ``norm``), class token dropped."""
    t = _teacher('clip_vitl14')
    assert t.final_norm is False and t.layer == -1
    pre = t.preprocess(_images(256))
    with torch.no_grad():
        manual = _run_blocks(t.model, pre, 3)  # (B, 1 + 256, C)
        out = t.patch_tokens(pre)
        post = t.model.forward_features(pre)[:, 1:]
    torch.testing.assert_close(out, manual[:, 1:], rtol=0, atol=1e-6)
    assert (out - post).abs().max() > 0.1  # the final norm would change the target
    normed = _teacher('clip_vitl14', final_norm=True)
    with torch.no_grad():
        torch.testing.assert_close(normed.patch_tokens(pre), post)


def test_intermediate_layer_is_block_n_before_any_norm_vit():
    """layer_extraction.extract_at_layer(layer=n): block n's (1-based) output, no final norm,
    prefix tokens dropped."""
    t = _teacher('dinov2_vitb14', layer=2)
    assert t.final_norm is False
    pre = t.preprocess(_images(256))
    with torch.no_grad():
        manual = _run_blocks(t.model, pre, 2)[:, 1:]  # (B, 256, C)
        out = t.patch_tokens(pre)
        torch.testing.assert_close(out, manual, rtol=0, atol=1e-6)
        assert (out - _run_blocks(t.model, pre, 3)[:, 1:]).abs().max() > 1e-2  # block 3 differs
        last = _teacher('dinov2_vitb14', layer=3).patch_tokens(pre)  # layer=depth: pre-norm
        torch.testing.assert_close(last, _run_blocks(t.model, pre, 3)[:, 1:], rtol=0, atol=1e-6)


def test_intermediate_layer_dinov3_matches_a_block_hook():
    """The release's own mechanism (a forward hook on blocks[n - 1]) on a RoPE ViT with 5
    prefix tokens."""
    t = _teacher('dinov3_vitb16', layer=2)
    pre = t.preprocess(_images(256))
    captured = []
    handle = t.model.blocks[1].register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        with torch.no_grad():
            t.model.forward_features(pre)
    finally:
        handle.remove()
    with torch.no_grad():
        torch.testing.assert_close(t.patch_tokens(pre), captured[0][:, 5:], rtol=0, atol=1e-6)


def test_layer_out_of_range():
    with pytest.raises(ValueError, match=r'layer=4 out of range.*1\.\.3'):
        _teacher('dinov2_vitb14', layer=4)
    with pytest.raises(ValueError, match='layer=0'):
        _teacher('dinov2_vitb14', layer=0)


# ------------------------------------------------------------------ configs
FRAGMENTS = {'dinov2_vitb14': 'dinov2', 'dinov3_vitb16': 'dinov3', 'clip_vitl14': 'clip',
             'siglip2_vitb16': 'siglip2'}


@pytest.mark.parametrize('fragment, name', sorted(FRAGMENTS.items()))
def test_teacher_config_checks_builds_and_equals_the_preset(fragment, name):
    cfg = Config.fromfile(osp.join(REPO, f'configs/_base_/teachers/{fragment}.py'))
    teachers = cfg['_teachers'].to_dict()
    assert list(teachers) == [name]
    check_config(Config(dict(model=dict(teachers=teachers))))  # every key read by TimmTeacher
    built = ALIGN_ENCODERS.build(dict(teachers[name], pretrained_source='none',
                                      model_kwargs=TINY))
    default = _teacher(fragment)  # preset defaults only
    assert built.extra_repr() == default.extra_repr()  # the fragment states the preset
    assert built(_images(256, batch=1)).shape == (1, 256, 32)
