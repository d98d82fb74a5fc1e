"""Perceptual losses: LPIPS (ImageNet VGG16 trunk) and ST-LPIPS (the offline default).

Both are ``FrozenNet``s: always in eval mode, weights never require grad and are left out of the
owner's ``state_dict``; gradients still flow through them to the inputs (the reconstruction).
Inputs are images in [-1, 1], (B, 3, H, W). ``distance(x, y)`` gives the per-sample (B,) value,
``forward(pred, target)`` the training loss ``loss_weight * mean over batch``.

Precision under autocast: ``fp32=True`` runs the whole loss in float32; with ``fp32=False``
(default) the trunk runs in the autocast dtype (bf16) and LPIPS's unit normalisation, squared
differences and heads still run in float32 (they subtract nearly equal features).

Where the weights come from:

- ``LPIPS``: VGG16 ImageNet trunk from ``vgg_weights`` (a torchvision-format state dict; only the
  ``features.*`` keys are used) or, when None, torchvision's ``VGG16_Weights.IMAGENET1K_V1``
  (downloaded into the torch hub cache). Linear heads from ``lin_weights`` (``lpips`` package
  format, keys ``lin{k}.model.1.weight``) or, when None, the ``lpips`` package's bundled
  ``weights/v0.1/vgg.pth``.
- ``STLPIPS``: the trunk and heads bundled with ``stlpips-pytorch`` (no network access).
"""
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Optional

import torch
import torchvision
from torch import Tensor, nn

from gear.registry import LOSSES
from gear.utils.frozen import FrozenNet
from .precision import autocast_channels_last, fp32_region

# LPIPS v0.1 input scaling: (x - shift) / scale, x in [-1, 1].
_LPIPS_SHIFT = (-.030, -.088, -.188)
_LPIPS_SCALE = (.458, .448, .450)
# End indices (exclusive) of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in vgg16().features.
_VGG_SLICE_ENDS = (4, 9, 16, 23, 30)
_VGG_CHANNELS = (64, 128, 256, 512, 512)


def _unit_normalize(feat: Tensor, eps: float = 1e-10) -> Tensor:
    """(B, C, h, w) -> the same, each spatial feature vector scaled to unit l2 norm over C."""
    return feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def _load_vgg_features(vgg_weights: Optional[str]) -> dict:
    """The ``features.*`` weights of an ImageNet VGG16, keys without the ``features.`` prefix."""
    weights_enum = torchvision.models.VGG16_Weights.IMAGENET1K_V1
    url = weights_enum.url
    cache_dir = os.path.join(torch.hub.get_dir(), 'checkpoints')
    if vgg_weights is not None:
        path = os.path.expanduser(str(vgg_weights))
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"LPIPS: VGG16 ImageNet weights not found at '{path}'. Pass vgg_weights=<a "
                f"torchvision-format VGG16 state dict, e.g. {os.path.basename(url)} from {url}>, "
                f"or vgg_weights=None to let torchvision download it into '{cache_dir}'.")
        state = torch.load(path, map_location='cpu', weights_only=True)
        where = f"'{path}'"
    else:
        try:
            state = weights_enum.get_state_dict(progress=False, check_hash=False)
        except Exception as err:  # no network, proxy, corrupt cache, ...
            raise RuntimeError(
                f"LPIPS: could not get the VGG16 ImageNet weights from torchvision: downloading "
                f"{url} into the torch hub cache '{cache_dir}' failed ({type(err).__name__}: "
                f"{err}). Copy {os.path.basename(url)} into '{cache_dir}' or pass "
                f"vgg_weights=<path to it>.") from err
        where = f"'{os.path.join(cache_dir, os.path.basename(url))}'"
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    feats = {k[len('features.'):]: v for k, v in state.items() if k.startswith('features.')}
    if not feats:
        raise RuntimeError(f'LPIPS: {where} has no torchvision VGG16 "features.*" keys '
                           f'(first keys: {list(state)[:5]}).')
    return feats


def _load_lin_weights(lin_weights: Optional[str]) -> dict:
    """The five 1x1 head weights of LPIPS v0.1 (vgg), keys ``lin{k}.model.1.weight``."""
    if lin_weights is None:
        spec = importlib.util.find_spec('lpips')
        if spec is None or spec.origin is None:
            raise FileNotFoundError(
                "LPIPS: lin_weights=None and the 'lpips' package is not installed, so its bundled "
                "'lpips/weights/v0.1/vgg.pth' could not be found. Run `pip install lpips` or pass "
                "lin_weights=<path to an LPIPS v0.1 vgg.pth>.")
        path = str(Path(spec.origin).parent / 'weights' / 'v0.1' / 'vgg.pth')
    else:
        path = os.path.expanduser(str(lin_weights))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"LPIPS: linear-head weights not found at '{path}'. Pass lin_weights=<path to an "
            f"LPIPS v0.1 vgg.pth (keys lin0.model.1.weight ...)> or `pip install lpips`.")
    state = torch.load(path, map_location='cpu', weights_only=True)
    keys = [f'lin{k}.model.1.weight' for k in range(len(_VGG_CHANNELS))]
    missing = [k for k in keys if k not in state]
    if missing:
        raise RuntimeError(f"LPIPS: '{path}' lacks keys {missing} (has {list(state)[:5]}).")
    return {k: state[k] for k in keys}


@LOSSES.register_module()
class LPIPS(FrozenNet):
    """LPIPS v0.1 with the ImageNet VGG16 trunk (Zhang et al. 2018), as a frozen loss.

    d(x, y) = sum_l mean_hw( w_l . (n(f_l(x)) - n(f_l(y)))^2 ), f_l = VGG16 relu{1_2..5_3} of the
    scaled input, n = unit normalisation over channels, w_l = 1x1 linear head (no bias).

    Args:
        net: trunk; only ``'vgg'``.
        loss_weight: factor applied to the batch mean of the distance.
        vgg_weights: local torchvision-format VGG16 state dict; None: torchvision's download.
        lin_weights: local LPIPS v0.1 ``vgg.pth``; None: the ``lpips`` package's bundled file.
        fp32: run the VGG trunk in float32 under autocast too (default False: bf16 trunk).
        pretrained_source: ``'default'`` (the weights above) or ``'none'``: random trunk and
            heads, the same cost, no files needed (benchmarks and smoke tests only).
    """

    def __init__(self, net: str = 'vgg', loss_weight: float = 1.0,
                 vgg_weights: Optional[str] = None, lin_weights: Optional[str] = None,
                 fp32: bool = False, pretrained_source: str = 'default'):
        super().__init__()
        if pretrained_source not in ('default', 'none'):
            raise ValueError(f"LPIPS: pretrained_source must be 'default' or 'none', "
                             f'got {pretrained_source!r}')
        self.fp32 = bool(fp32)
        if net != 'vgg':
            raise ValueError(f"LPIPS: unknown net {net!r}; allowed: ['vgg'] "
                             f"(use STLPIPS for the offline alex/vgg metric)")
        self.net_name = net
        self.loss_weight = float(loss_weight)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _VGG_CHANNELS)
        if pretrained_source == 'none':  # random, but heads >= 0 as LPIPS's (a distance)
            self.features = torchvision.models.vgg16(weights=None).features[:_VGG_SLICE_ENDS[-1]]
            for lin, c in zip(self.lins, _VGG_CHANNELS):
                nn.init.uniform_(lin.weight, 0.0, 2.0 / c)
        else:
            lin_state = _load_lin_weights(lin_weights)
            feat_state = _load_vgg_features(vgg_weights)
            # Build on the meta device (skips the 138M-parameter random init), then load.
            with torch.device('meta'):
                features = torchvision.models.vgg16(weights=None).features[:_VGG_SLICE_ENDS[-1]]
            features = features.to_empty(device='cpu')
            features.load_state_dict({k: v for k, v in feat_state.items()
                                      if int(k.split('.')[0]) < _VGG_SLICE_ENDS[-1]}, strict=True)
            self.features = features
            with torch.no_grad():
                for k, lin in enumerate(self.lins):
                    lin.weight.copy_(lin_state[f'lin{k}.model.1.weight'])
        self.register_buffer('shift', torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('scale', torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.freeze_()

    def _taps(self, x: Tensor) -> list:
        """(N, 3, H, W) scaled input -> five VGG feature maps (N, C_l, H_l, W_l); channels-last
        under a CPU autocast (``autocast_channels_last``)."""
        x, taps, start = autocast_channels_last(x), [], 0
        for end in _VGG_SLICE_ENDS:
            for idx in range(start, end):
                x = self.features[idx](x)
            taps.append(x)
            start = end
        return taps

    def _pair_taps(self, x: Tensor, y: Tensor) -> tuple:
        """The trunk's five maps of x and of y (two lists of (B, C_l, H_l, W_l)).

        One pass over the 2B images, except when exactly one of them needs a gradient (the
        training loss: a reconstruction against its target): the other then runs without
        autograd, so the backward pass goes through the trunk for B images, not 2B. The
        per-image maps are the same either way.
        """
        if torch.is_grad_enabled() and x.requires_grad != y.requires_grad:
            moving, fixed = (x, y) if x.requires_grad else (y, x)
            with torch.no_grad():
                fixed_taps = self._taps((fixed - self.shift) / self.scale)
            moving_taps = self._taps((moving - self.shift) / self.scale)
            return (moving_taps, fixed_taps) if x.requires_grad else (fixed_taps, moving_taps)
        b = x.shape[0]
        taps = self._taps((torch.cat([x, y], dim=0) - self.shift) / self.scale)  # (2B, ...)
        return [t[:b] for t in taps], [t[b:] for t in taps]

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """x, y: (B, 3, H, W) in [-1, 1] -> (B,) LPIPS distance."""
        with fp32_region(x, y, enabled=self.fp32) as (x, y):
            taps_x, taps_y = self._pair_taps(x, y)
        dist = 0.
        with fp32_region(*taps_x, *taps_y) as taps:  # normalise, difference, heads in float32
            n = len(self.lins)
            for lin, fx, fy in zip(self.lins, taps[:n], taps[n:]):
                dist = dist + lin((_unit_normalize(fx) - _unit_normalize(fy)) ** 2
                                  ).mean(dim=(2, 3))  # (B, 1)
        return dist.flatten()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """pred, target: (B, 3, H, W) in [-1, 1] -> scalar ``loss_weight * mean_b d``."""
        return self.loss_weight * self.distance(pred, target).mean()

    def extra_repr(self) -> str:
        return f'net={self.net_name!r}, loss_weight={self.loss_weight}, fp32={self.fp32}'


def _import_stlpips():
    """Import ``stlpips_pytorch.stlpips``.

    It imports ``IPython.embed`` and ``torchsummary.summary`` at module level but uses neither
    for computing the metric; when those packages are absent, placeholder modules stand in for
    the duration of the import only (they are removed from ``sys.modules`` afterwards).
    """
    stubs = {}
    for name, attr in (('IPython', 'embed'), ('torchsummary', 'summary')):
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            def _unavailable(*args, _name=name, **kwargs):
                raise ImportError(f'{_name} is not installed')
            stub = types.ModuleType(name)
            setattr(stub, attr, _unavailable)
            stubs[name] = stub
    sys.modules.update(stubs)
    try:
        from stlpips_pytorch import stlpips
    finally:
        for name, stub in stubs.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]
    return stlpips


@LOSSES.register_module()
class STLPIPS(FrozenNet):
    """Shift-tolerant LPIPS (Ghildyal & Liu, ECCV 2022), the offline perceptual loss.

    Wraps ``stlpips_pytorch.stlpips.LPIPS(net, variant='shift_tolerant')``, whose anti-aliased
    trunk and linear heads ship in the package (``weights/vST0.0/{net}_shift_tolerant.pth``);
    nothing is downloaded. Its trunk was trained on BAPPS perceptual judgements, not ImageNet.

    Args:
        net: ``'alex'`` (default in the paper) or ``'vgg'``.
        loss_weight: factor applied to the batch mean of the distance.
        fp32: run the metric in float32 under autocast (default False: the autocast dtype).
    """

    def __init__(self, net: str = 'alex', loss_weight: float = 1.0, fp32: bool = False):
        super().__init__()
        self.fp32 = bool(fp32)
        if net not in ('alex', 'vgg'):
            raise ValueError(f"STLPIPS: unknown net {net!r}; allowed: ['alex', 'vgg']")
        self.net_name = net
        self.loss_weight = float(loss_weight)
        stlpips = _import_stlpips()
        self.metric = stlpips.LPIPS(pretrained=True, net=net, variant='shift_tolerant',
                                    verbose=False)
        self.freeze_()

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """x, y: (B, 3, H, W) in [-1, 1] -> (B,) ST-LPIPS distance (float32 out)."""
        with fp32_region(x, y, enabled=self.fp32) as (x, y):
            x, y = autocast_channels_last(x), autocast_channels_last(y)  # NHWC in CPU autocast
            return self.metric(x, y, normalize=False).flatten().float()  # (B, 1, 1, 1) -> (B,)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """pred, target: (B, 3, H, W) in [-1, 1] -> scalar ``loss_weight * mean_b d``."""
        return self.loss_weight * self.distance(pred, target).mean()

    def extra_repr(self) -> str:
        return f'net={self.net_name!r}, loss_weight={self.loss_weight}, fp32={self.fp32}'

