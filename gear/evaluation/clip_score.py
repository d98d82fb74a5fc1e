"""CLIPScore of generated images against their prompts (Hessel et al. 2021, as torchmetrics):

    score = 100 * mean_i max(cos(E_img(x_i), E_txt(p_i)), 0)

with a CLIP model through ``transformers`` (``CLIPModel`` + its tokenizer) from a local directory
or a hub id, as the official GEAR T2I release's ``--clip-model-path``. Images are resized
(bicubic, antialiased) to the model's input size and normalised with its processor's mean / std
(CLIP's when the directory has no ``preprocessor_config.json``). ``build_clip_scorer`` returns
``(None, reason)`` when no model loads, so a report says why the number is missing instead of
failing.
"""
import json
import os.path as osp
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


class CLIPScorer:
    """CLIPScore of uint8 images (N, H, W, 3) against N prompts, in batches."""

    def __init__(self, path: str, device: str = 'cpu', batch_size: int = 64,
                 local_files_only: bool = True):
        from transformers import AutoTokenizer, CLIPModel
        self.path, self.batch_size, self.device = path, batch_size, device
        self.model = CLIPModel.from_pretrained(path, local_files_only=local_files_only).eval()
        self.model.to(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
        if self.tokenizer.pad_token is None:  # CLIP pools at the EOS token: padding is unread
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.size = self.model.config.vision_config.image_size
        self.max_length = self.model.config.text_config.max_position_embeddings
        mean, std = CLIP_MEAN, CLIP_STD
        proc = osp.join(path, 'preprocessor_config.json')
        if osp.isfile(proc):
            with open(proc) as f:
                cfg = json.load(f)
            mean, std = cfg.get('image_mean', mean), cfg.get('image_std', std)
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def _images(self, images_uint8: Tensor) -> Tensor:
        x = images_uint8.to(self.device).permute(0, 3, 1, 2).float() / 255  # (B, 3, H, W)
        x = F.interpolate(x, size=(self.size, self.size), mode='bicubic', antialias=True,
                          align_corners=False).clamp(0, 1)  # (B, 3, S, S)
        return (x - self.mean) / self.std

    def per_image(self, images_uint8: Tensor, prompts: Sequence[str]) -> Tensor:
        """(N,) 100 * max(cos, 0) of each image with its prompt."""
        return 100 * self.cosine(images_uint8, prompts).clamp(min=0)

    @torch.no_grad()
    def cosine(self, images_uint8: Tensor, prompts: Sequence[str]) -> Tensor:
        """(N,) cosine of CLIP's image and text embeddings, image i with prompt i."""
        if len(prompts) != images_uint8.shape[0]:
            raise ValueError(f'{images_uint8.shape[0]} images but {len(prompts)} prompts')
        out = []
        for s in range(0, len(prompts), self.batch_size):
            part = list(prompts[s:s + self.batch_size])
            text = self.tokenizer(part, padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors='pt').to(self.device)
            img = self.model.get_image_features(pixel_values=self._images(
                images_uint8[s:s + self.batch_size]))  # (B, D)
            txt = self.model.get_text_features(**text)  # (B, D)
            img, txt = (getattr(t, 'pooler_output', t) for t in (img, txt))
            cos = F.cosine_similarity(img.float(), txt.float(), dim=-1)  # (B,)
            out.append(cos.cpu())
        return torch.cat(out)

    def score(self, images_uint8: Tensor, prompts: Sequence[str]) -> float:
        return float(self.per_image(images_uint8, prompts).mean())


def build_clip_scorer(path: Optional[str], device: str = 'cpu', **kwargs
                      ) -> Tuple[Optional[CLIPScorer], Optional[str]]:
    """``(scorer, None)``, or ``(None, reason)`` when no CLIP model is given or loads."""
    if not path:
        return None, 'no CLIP model given (--clip-model PATH: a transformers CLIPModel directory)'
    try:
        return CLIPScorer(path, device, **kwargs), None
    except (OSError, ValueError, ImportError) as e:
        return None, f'CLIP model {path!r} does not load: {e}'
