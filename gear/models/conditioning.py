"""What the AR is conditioned on: class labels, or captions through a frozen text encoder.

A stage model with ``text_encoder`` (a TEXT_ENCODERS config, ``gear.models.text``) reads
``data['caption']`` (a list of B strings) and conditions its prior on the encoder's
``(emb (B, T, C), mask (B, T))``; without one it reads ``data['label']`` (B,). The encoder is
frozen and left out of checkpoints; its width and length must equal the AR's ``caption_dim`` and
``cls_token_num``, and an AR with ``null_caption='empty'`` takes its null caption from the
encoder's embedding of "" (set before the prior's EMA copy is made, so both hold it).
"""
from typing import Optional

from torch import nn

from gear.registry import TEXT_ENCODERS


def build_text_encoder(cfg: Optional[dict], prior: nn.Module) -> Optional[nn.Module]:
    """The frozen text encoder of ``cfg`` for ``prior``'s AR, or None for a class-conditional AR;
    a mismatch raises ``ValueError`` naming both config keys."""
    ar = prior.ar
    if cfg is None:
        if ar.caption_dim is not None:
            raise ValueError(f'model.prior.ar.caption_dim={ar.caption_dim}: a caption-conditional '
                             'AR needs model.text_encoder (e.g. dict(type="HFTextEncoder", ...))')
        return None
    if ar.caption_dim is None:
        raise ValueError('model.text_encoder is set but model.prior.ar.caption_dim is None: set '
                         "it to the encoder's hidden size")
    encoder = TEXT_ENCODERS.build(cfg)
    if encoder.feature_dim != ar.caption_dim:
        raise ValueError(f'model.text_encoder hidden size {encoder.feature_dim} != '
                         f'model.prior.ar.caption_dim {ar.caption_dim}')
    if encoder.max_length != ar.cls_token_num:
        raise ValueError(f'model.text_encoder.max_length {encoder.max_length} != '
                         f'model.prior.ar.cls_token_num {ar.cls_token_num} (the caption prefix)')
    if ar.cls_embedding.null_caption == 'empty':
        ar.cls_embedding.set_null_caption(*encoder(['']))
    return encoder


def condition(data: dict, text_encoder: Optional[nn.Module]):
    """The AR condition of a batch: ``data['label']`` (B,), or the caption embedding
    ``(emb (B, T, C), mask (B, T))`` of ``data['caption']``."""
    key = 'label' if text_encoder is None else 'caption'
    if key not in data:
        raise KeyError(f"the batch has no {key!r} (keys {sorted(data)}): "
                       + ('a class-conditional model needs labelled data' if key == 'label' else
                          'a model with text_encoder needs a caption dataset (CaptionShards)'))
    if text_encoder is None:
        return data['label']
    return text_encoder(list(data['caption']))
