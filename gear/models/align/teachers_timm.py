"""ViT teachers through timm (DINOv2, DINOv3, CLIP, SigLIP2): patch tokens on the token grid.

Features = the patch tokens of ``forward_features`` (after the final norm) with the prefix
tokens (class / registers, ``model.num_prefix_tokens``) removed, laid out on the patch grid and
resampled to ``grid_size``. Weights come from a local state dict (loaded strictly, after the
model family's own timm ``checkpoint_filter_fn``, so original DINOv2 / OpenAI-CLIP checkpoints and
other position-embedding sizes load too) or, when ``weights`` is None, from timm's
``pretrained=True`` (the Hugging Face hub). No ViT weights ship in any package: offline, pass
``weights=<path>``.
"""
import importlib
import os
from typing import Optional

import timm
import torch
from torch import Tensor

from gear.registry import ALIGN_ENCODERS

from .teachers import BaseTeacher

# short name -> (timm model name with its pretrained tag, default zscore). REFERENCE.md: the
# per-channel spatial z-score of the target is used for the non-DINO teachers.
TIMM_TEACHER_PRESETS = {
    'dinov2_vitb14': ('vit_base_patch14_dinov2.lvd142m', False),  # GEAR's default teacher
    'dinov3_vitb16': ('vit_base_patch16_dinov3.lvd1689m', False),
    'clip_vitl14': ('vit_large_patch14_clip_224.openai', True),
    'siglip2_vitb16': ('vit_base_patch16_siglip_224.v2_webli', True),
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
    """Frozen timm ViT teacher: final-norm patch tokens, prefix tokens removed, on the token grid.

    Args:
        model_name (str): a preset short name (``dinov2_vitb14``, ``dinov3_vitb16``,
            ``clip_vitl14``, ``siglip2_vitb16``; see ``TIMM_TEACHER_PRESETS``) or any timm ViT
            name, optionally with its pretrained tag (``vit_base_patch14_dinov2.lvd142m``).
        weights (str, optional): a local state dict; None = timm's pretrained weights.
        image_size (int): side the image is resized to (224 px in GEAR; a patch-14 ViT then has
            a 16 x 16 grid, a patch-16 ViT 14 x 14, bilinearly upsampled to ``grid_size``).
        grid_size (int): side of the token grid.
        zscore (bool, optional): per-channel spatial z-score of the target; None = the preset's
            default (True for CLIP / SigLIP2, False for DINO and for plain timm names).
        pretrained_source (str): where weights come from when ``weights`` is None: ``'hub'``
            (timm ``pretrained=True``) or ``'none'`` (random weights, for smoke tests only).
    """

    def __init__(self, model_name: str, weights: Optional[str] = None, image_size: int = 224,
                 grid_size: int = 16, zscore: Optional[bool] = None,
                 pretrained_source: str = 'hub'):
        timm_name, preset_zscore = TIMM_TEACHER_PRESETS.get(model_name, (model_name, False))
        if not timm.is_model(timm_name):
            raise ValueError(f"TimmTeacher: unknown timm model '{timm_name}'; presets: "
                             f'{sorted(TIMM_TEACHER_PRESETS)}')
        if pretrained_source not in ('hub', 'none'):
            raise ValueError("pretrained_source must be 'hub' or 'none', "
                             f'got {pretrained_source!r}')
        kwargs = dict(num_classes=0, img_size=image_size)
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
        cfg = model.pretrained_cfg
        super().__init__(image_size, grid_size, mean=cfg.get('mean', (0.485, 0.456, 0.406)),
                         std=cfg.get('std', (0.229, 0.224, 0.225)),
                         zscore=preset_zscore if zscore is None else zscore)
        self.model_name = timm_name
        self.model = model
        self.feature_dim = model.num_features
        self.num_prefix_tokens = getattr(model, 'num_prefix_tokens', 0)
        self.freeze_()

    def patch_tokens(self, x: Tensor) -> Tensor:
        """Preprocessed (B, 3, S, S) -> final-norm patch tokens (B, h * w, C), prefix removed."""
        tokens = self.model.forward_features(x)  # (B, P + h * w, C)
        return tokens[:, self.num_prefix_tokens:]  # (B, h * w, C)

    def extract(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) -> (B, C, h, w) on the ViT's patch grid."""
        patches = self.patch_tokens(x)  # (B, h * w, C)
        grid = getattr(getattr(self.model, 'patch_embed', None), 'grid_size', None)
        h, w = grid if grid is not None else (int(patches.shape[1] ** 0.5),) * 2
        if h * w != patches.shape[1]:
            raise RuntimeError(f'{self.model_name}: {patches.shape[1]} patch tokens do not fill '
                               f'a {h} x {w} grid')
        return patches.transpose(1, 2).reshape(patches.shape[0], -1, h, w)  # (B, C, h, w)
