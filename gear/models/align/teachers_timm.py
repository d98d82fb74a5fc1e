"""ViT teachers through timm (DINOv2, DINOv3, CLIP, SigLIP2): patch tokens on the token grid.

Features = patch tokens of the ViT with the prefix tokens (class / registers,
``model.num_prefix_tokens``) removed, laid out on the patch grid and resampled to ``grid_size``.
Which tokens (``layer``, ``final_norm``) follows the official GEAR release
(``src/repa_encoders/layer_extraction.py``, ``--repa-encoder-layer``):

- ``layer=-1`` (default): the output of the last block; with ``final_norm`` the model's final
  norm (timm ``model.norm``) applied, i.e. ``forward_features``. The release's DINOv2 / DINOv3
  (``x_norm_patchtokens``) and SigLIP2 (Hugging Face ``last_hidden_state``, after
  ``post_layernorm``) targets are after the final norm; its CLIP target is the OpenAI
  transformer's output *before* ``ln_post`` (timm's ``norm`` of the OpenAI CLIP ViTs).
- ``layer=n`` (1-based, 1..depth): the output of block n, before any final norm (the release's
  ``--repa-encoder-layer n``; it has no rule for CLIP, gear allows it). ``final_norm=True``
  applies the final norm to it anyway (not in the release).

Presets (``TIMM_TEACHER_PRESETS``) carry the release's settings per teacher: the timm weights
that equal its checkpoint, the input size at 256 px training (DINOv2 and CLIP resize to 224,
DINOv3 and SigLIP2 run at 256, native), the token choice and the target normalisation. All
resize bicubic without antialiasing (``F.interpolate`` defaults, as the release) and normalise
with the checkpoint's mean / std (ImageNet for DINO, OpenAI-CLIP for CLIP, 0.5 / 0.5 for SigLIP2:
timm's ``pretrained_cfg`` values equal the release's ``_constants.py``).

Not available: the release's fifth teacher, V-JEPA 2.1 (``jepa21-vit-b``,
``torch.hub.load('facebookresearch/vjepa2', 'vjepa2_1_vit_base_384')`` + weights from
dl.fbaipublicfiles.com, image branch with a T=1 axis, ImageNet mean / std, no resize,
``zscore`` target norm). timm (1.0.31) has no V-JEPA model, so there is no preset; adding it needs
the vjepa2 code and its checkpoint.

Weights come from a local state dict (loaded strictly, after the model family's own timm
``checkpoint_filter_fn``, so original DINOv2 / OpenAI-CLIP checkpoints and other
position-embedding sizes load too) or, when ``weights`` is None, from timm's ``pretrained=True``
(the Hugging Face hub). No ViT weights ship in any package: offline, pass ``weights=<path>``.
"""
import importlib
import os
from typing import NamedTuple, Optional

import timm
import torch
from torch import Tensor

from gear.registry import ALIGN_ENCODERS

from .teachers import BaseTeacher


class TeacherPreset(NamedTuple):
    """A timm teacher with the official release's settings (at 256 px training images)."""
    timm_name: str  # timm model name with its pretrained tag
    image_size: int  # network input side
    final_norm: bool  # the final norm on the last block's tokens (``layer=-1``)
    target_norm: Optional[str]  # see teachers.TARGET_NORMS


# short name -> the release's teacher (``--enc-type``; target norm as in its train_gear.sh)
TIMM_TEACHER_PRESETS = {
    # dinov2-vit-b: torch.hub dinov2_vitb14, pos_embed resampled to 16 x 16, 224 px,
    # x_norm_patchtokens; GEAR's default teacher
    'dinov2_vitb14': TeacherPreset('vit_base_patch14_dinov2.lvd142m', 224, True, None),
    # dinov3-vit-b: torch.hub dinov3_vitb16 (LVD-1689M), native size (RoPE), x_norm_patchtokens
    'dinov3_vitb16': TeacherPreset('vit_base_patch16_dinov3.lvd1689m', 256, True, None),
    # clip-vit-L: OpenAI clip.load('ViT-L/14').visual (QuickGELU), 224 px, tokens before ln_post
    'clip_vitl14': TeacherPreset('vit_large_patch14_clip_quickgelu_224.openai', 224, False,
                                 'irepa_zscore'),
    # siglip2-vit-b: google/siglip2-base-patch16-256 (SiglipVisionModel), native 256 px,
    # last_hidden_state (after post_layernorm)
    'siglip2_vitb16': TeacherPreset('vit_base_patch16_siglip_256.v2_webli', 256, True,
                                    'irepa_zscore'),
}


def _hub_id(model_name: str) -> str:
    """The hub repo timm would download ``model_name`` from (best effort, for messages)."""
    try:
        cfg = timm.models.get_pretrained_cfg(model_name)
        return getattr(cfg, 'hf_hub_id', None) or getattr(cfg, 'url', None) or '?'
    except Exception:  # unknown tag etc.: the message still names the model
        return '?'


def _load_local(model, path: str, model_name: str) -> None:
    """Load a state dict file strictly into ``model`` (through the family's filter fn)."""
    state = torch.load(path, map_location='cpu', weights_only=True)
    filter_fn = getattr(importlib.import_module(type(model).__module__), 'checkpoint_filter_fn',
                        None)
    if filter_fn is not None:  # unwraps 'model' / 'state_dict', converts original formats
        state = filter_fn(state, model)
    own = model.state_dict()
    # a checkpoint with a classifier loads into the head-less (num_classes=0) teacher
    state = {k: v for k, v in state.items() if not (k.startswith('head.') and k not in own)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f"TimmTeacher: '{path}' does not fit timm model '{model_name}': "
                           f'{err}') from err


@ALIGN_ENCODERS.register_module()
class TimmTeacher(BaseTeacher):
    """Frozen timm ViT teacher: patch tokens of one block, prefix tokens removed, on the token grid.

    Args:
        model_name (str): a preset short name (``dinov2_vitb14``, ``dinov3_vitb16``,
            ``clip_vitl14``, ``siglip2_vitb16``; see ``TIMM_TEACHER_PRESETS``) or any timm ViT
            name, optionally with its pretrained tag (``vit_base_patch14_dinov2.lvd142m``).
        weights (str, optional): a local state dict; None = timm's pretrained weights.
        image_size (int, optional): side the image is resized to; None = the preset's (224 for
            DINOv2 / CLIP, 256 for DINOv3 / SigLIP2; 224 for plain timm names). A patch-14 ViT
            at 224 px has a 16 x 16 grid, a patch-16 ViT at 256 px too.
        grid_size (int): side of the token grid.
        layer (int): -1 = the last block (default, as the release); n = block n (1-based),
            before any final norm.
        final_norm (bool, optional): apply the final norm to the chosen tokens; None = the
            preset's for ``layer=-1`` (False for CLIP, True otherwise) and False for ``layer=n``.
        target_norm (str, optional): ``'preset'`` (default: ``'irepa_zscore'`` for CLIP /
            SigLIP2, None for DINO and plain timm names), None, ``'irepa_zscore'``,
            ``'irepa_demean'`` or ``'zscore'`` (see ``teachers.py``).
        target_norm_alpha (float): mean-subtraction strength of ``'irepa_*'`` (0.6, the
            release's ``--repa-spnorm-alpha``).
        resize_mode (str): ``F.interpolate`` mode of the resize to ``image_size`` (bicubic).
        antialias (bool): antialiased resize (off, as the release).
        model_kwargs (dict, optional): extra ``timm.create_model`` arguments (e.g. a smaller
            ``depth`` / ``embed_dim`` for tests; a checkpoint must then fit them).
        pretrained_source (str): where weights come from when ``weights`` is None: ``'hub'``
            (timm ``pretrained=True``) or ``'none'`` (random weights, for smoke tests only).
    """

    def __init__(self, model_name: str, weights: Optional[str] = None,
                 image_size: Optional[int] = None, grid_size: int = 16, layer: int = -1,
                 final_norm: Optional[bool] = None, target_norm: Optional[str] = 'preset',
                 target_norm_alpha: float = 0.6, resize_mode: str = 'bicubic',
                 antialias: bool = False, model_kwargs: Optional[dict] = None,
                 pretrained_source: str = 'hub'):
        preset = TIMM_TEACHER_PRESETS.get(model_name, TeacherPreset(model_name, 224, True, None))
        timm_name = preset.timm_name
        if not timm.is_model(timm_name):
            raise ValueError(f"TimmTeacher: unknown timm model '{timm_name}'; presets: "
                             f'{sorted(TIMM_TEACHER_PRESETS)}')
        if pretrained_source not in ('hub', 'none'):
            raise ValueError("pretrained_source must be 'hub' or 'none', "
                             f'got {pretrained_source!r}')
        image_size = preset.image_size if image_size is None else int(image_size)
        kwargs = dict(model_kwargs or {}, num_classes=0, img_size=image_size)
        if weights is not None:
            path = os.path.expanduser(str(weights))
            if not os.path.isfile(path):  # before building a large model for nothing
                raise FileNotFoundError(f"TimmTeacher: weights file for '{timm_name}' not found "
                                        f"at '{path}'")
            model = timm.create_model(timm_name, pretrained=False, **kwargs)
            _load_local(model, path, timm_name)
        elif pretrained_source == 'none':
            model = timm.create_model(timm_name, pretrained=False, **kwargs)
        else:
            try:
                model = timm.create_model(timm_name, pretrained=True, **kwargs)
            except Exception as err:  # offline, no cache, gated repo, ...
                raise RuntimeError(
                    f"TimmTeacher: could not get pretrained weights for timm model '{timm_name}' "
                    f"from the Hugging Face hub (repo '{_hub_id(timm_name)}'): "
                    f"{type(err).__name__}: {str(err).rstrip('.')}. Offline, download the weights "
                    'elsewhere and pass weights=<path to a state dict> (a timm or original '
                    'checkpoint).'
                ) from err
        depth = len(getattr(model, 'blocks', ()))
        layer = int(layer)
        if layer != -1 and not 1 <= layer <= depth:
            raise ValueError(f"TimmTeacher: layer={layer} out of range for '{timm_name}' "
                             f'({depth} blocks): -1 (the last block) or 1..{depth}')
        if final_norm is None:
            final_norm = preset.final_norm if layer == -1 else False
        cfg = model.pretrained_cfg
        super().__init__(image_size, grid_size, mean=cfg.get('mean', (0.485, 0.456, 0.406)),
                         std=cfg.get('std', (0.229, 0.224, 0.225)), resize_mode=resize_mode,
                         antialias=antialias,
                         target_norm=preset.target_norm if target_norm == 'preset' else target_norm,
                         target_norm_alpha=target_norm_alpha)
        self.model_name = timm_name
        self.model = model
        self.depth = depth
        self.layer = layer
        self.final_norm = bool(final_norm)
        self.feature_dim = model.num_features
        self.num_prefix_tokens = getattr(model, 'num_prefix_tokens', 0)
        self.freeze_()

    def patch_tokens(self, x: Tensor) -> Tensor:
        """Preprocessed (B, 3, S, S) -> the chosen patch tokens (B, h * w, C), prefix removed."""
        if self.layer == -1 and self.final_norm:
            tokens = self.model.forward_features(x)  # (B, P + h * w, C), after model.norm
            return tokens[:, self.num_prefix_tokens:]  # (B, h * w, C)
        index = self.depth - 1 if self.layer == -1 else self.layer - 1  # 0-based block
        # timm: output of block ``index`` (norm applied iff final_norm), prefix tokens removed,
        # the later blocks not run
        return self.model.forward_intermediates(
            x, indices=[index], norm=self.final_norm, stop_early=True, output_fmt='NLC',
            intermediates_only=True)[0]  # (B, h * w, C)

    def extract(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) -> (B, C, h, w) on the ViT's patch grid."""
        patches = self.patch_tokens(x)  # (B, h * w, C)
        grid = getattr(getattr(self.model, 'patch_embed', None), 'grid_size', None)
        h, w = grid if grid is not None else (int(patches.shape[1] ** 0.5),) * 2
        if h * w != patches.shape[1]:
            raise RuntimeError(f'{self.model_name}: {patches.shape[1]} patch tokens do not fill '
                               f'a {h} x {w} grid')
        return patches.transpose(1, 2).reshape(patches.shape[0], -1, h, w)  # (B, C, h, w)

    def extra_repr(self) -> str:  # part of the feature cache's namespace
        return (f'{super().extra_repr()}, model={self.model_name}, layer={self.layer}, '
                f'final_norm={self.final_norm}')
