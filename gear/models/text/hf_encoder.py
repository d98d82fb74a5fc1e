"""A frozen text encoder from HF ``transformers``: captions -> padded token embeddings.

A text-to-image AR reads a caption as a prefix of T = ``max_length`` embeddings: LlamaGen's
T2I conditions on ``google/flan-t5-xl`` (the T5 encoder, 120 tokens, fp32); the official GEAR
T2I recipe on ``Qwen/Qwen3-1.7B``'s last hidden state (300 tokens, bf16). Both are the same few
steps, done here once:

    tokens = tokenizer(captions, padding='max_length', truncation=True)   # right padded
    emb    = model(tokens, attention_mask).last_hidden_state              # (B, T, C), no grad
    emb[~mask] = 0                                                        # padded rows exactly 0

Right padding keeps a caption's rows independent of the batch it is in: T5's encoder masks the
pads out of attention and a causal model never looks ahead at them. The encoder runs in its own
``dtype`` with autocast off (its features do not change with the trainer's precision) and is a
:class:`~gear.utils.frozen.FrozenNet`: eval mode, no grad, never in its owner's checkpoint. With
``cache_dir`` the embeddings are kept on disk (:mod:`.embedding_cache`).
"""
import hashlib
import json
import os
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from gear.registry import TEXT_ENCODERS
from gear.utils.frozen import FrozenNet

from .embedding_cache import TextEmbeddingCache

DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16}
FAMILIES = ('auto', 't5', 'qwen', 'causal')
T5_MODEL_TYPES = ('t5',)


def _looks_like_hub_id(path: str) -> bool:
    """``name`` or ``org/name``: what the hub accepts; anything else is meant as a local path."""
    return not (os.path.isabs(path) or path.startswith(('.', '~')) or path.count('/') > 1)


def _from_pretrained(load, path: str, local_files_only: bool, **kwargs):
    """``load(path, ...)``; a path that is not a local directory and cannot be fetched raises
    ``OSError`` naming it and saying how to get it."""
    if os.path.isdir(path):
        return load(path, local_files_only=local_files_only, **kwargs)
    how = ('download it (`hf download <hub id> --local-dir DIR`) and set path=DIR, '
           'or write a tiny offline one (`python tools/make_tiny_text_encoder.py --out DIR`)')
    if not _looks_like_hub_id(path):
        raise OSError(f'text encoder path {path!r}: no such local directory; {how}')
    try:
        return load(path, local_files_only=local_files_only, **kwargs)
    except Exception as e:  # offline, unknown repo, gated: one message, the cause chained
        cause = ' '.join(str(e).split())
        raise OSError(f'text encoder path {path!r} is not a local directory and could not be '
                      f'loaded from the hub ({type(e).__name__}: {cause}); '
                      f'{how.replace("<hub id>", path)}') from e


@TEXT_ENCODERS.register_module()
class HFTextEncoder(FrozenNet):
    """Frozen ``transformers`` text encoder; ``forward(captions) -> (emb, mask)``.

    Args:
        path (str): a local model directory or a hub id (``google/flan-t5-xl``).
        family (str): ``'t5'`` (``T5EncoderModel``), ``'qwen'`` / ``'causal'`` (``AutoModel``,
            e.g. ``Qwen3Model``) or ``'auto'``: ``'t5'`` if ``config.model_type`` is t5, else
            causal. A model with a ``.language_model`` (a vision-language model) is replaced by
            it, as the official GEAR T2I release does with Qwen3.
        max_length (int): tokens per caption, T (the AR's caption prefix, ``cls_token_num``):
            longer captions are truncated, shorter ones right padded.
        dtype (str): ``'float32'`` or ``'bfloat16'``: the weights' and the computation's dtype;
            the embedding is returned as float32 either way.
        cache_dir (str, optional): keep the embeddings on disk there
            (:class:`~.embedding_cache.TextEmbeddingCache`).
        local_files_only (bool): never ask the hub (the path must be local or already in the
            HF cache).
    """

    def __init__(self, path: str, family: str = 'auto', max_length: int = 120,
                 dtype: str = 'float32', cache_dir: Optional[str] = None,
                 local_files_only: bool = False):
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel

        if family not in FAMILIES:
            raise ValueError(f'text encoder family must be one of {FAMILIES}, got {family!r}')
        if dtype not in DTYPES:
            raise ValueError(f'text encoder dtype must be one of {tuple(DTYPES)}, got {dtype!r}')
        if int(max_length) < 1:
            raise ValueError(f'text encoder max_length must be >= 1, got {max_length}')
        self.path, self.dtype_name, self._max_length = str(path), dtype, int(max_length)
        config = _from_pretrained(AutoConfig.from_pretrained, self.path, local_files_only)
        if family == 'auto':
            family = 't5' if config.model_type in T5_MODEL_TYPES else 'causal'
        self.family = family
        model_cls = T5EncoderModel if family == 't5' else AutoModel
        model = _from_pretrained(model_cls.from_pretrained, self.path, local_files_only,
                                 dtype=DTYPES[dtype])
        model = getattr(model, 'language_model', model)  # a VLM: its text model only
        self.model = model.to(DTYPES[dtype])
        self.tokenizer = _from_pretrained(AutoTokenizer.from_pretrained, self.path,
                                          local_files_only)
        self.tokenizer.padding_side = 'right'
        if self.tokenizer.pad_token is None:
            if self.tokenizer.eos_token is None:
                raise ValueError(f'text encoder {self.path!r}: the tokenizer has neither a pad '
                                 'nor an eos token to pad with')
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._feature_dim = int(self.model.config.hidden_size)
        self._fingerprint: Optional[str] = None
        self.cache = TextEmbeddingCache(cache_dir) if cache_dir else None
        self.freeze_()

    @property
    def feature_dim(self) -> int:
        """The encoder's hidden size C."""
        return self._feature_dim

    @property
    def max_length(self) -> int:
        """Tokens per caption, T."""
        return self._max_length

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def extra_repr(self) -> str:
        return (f'path={self.path!r}, family={self.family!r}, max_length={self.max_length}, '
                f'dtype={self.dtype_name!r}, cache_dir={self.cache and self.cache.root!r}')

    def forward(self, captions: Sequence[str]) -> Tuple[Tensor, Tensor]:
        """B captions -> ``emb`` (B, T, C) float32 (padded rows 0), ``mask`` (B, T) bool (True =
        real token), on the module's device; read from the cache where there is one."""
        captions = _check_captions(captions)
        if self.cache is not None:
            return self.cache.lookup(self, captions)
        return self.encode(captions)

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> Tuple[Tensor, Tensor]:
        """``forward`` without the cache: tokenize and run the model."""
        device, T = self.device, self.max_length
        if not captions:
            return torch.zeros(0, T, self.feature_dim, device=device), torch.zeros(
                0, T, dtype=torch.bool, device=device)
        batch = self.tokenizer(list(captions), padding='max_length', truncation=True,
                               max_length=T, return_tensors='pt')
        ids = batch['input_ids'].to(device)  # (B, T)
        mask = batch['attention_mask'].to(device).bool()  # (B, T)
        with torch.autocast(device.type, enabled=False):
            hidden = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        emb = hidden.float().masked_fill(~mask[..., None], 0.0)  # (B, T, C)
        return emb, mask

    def fingerprint(self) -> str:
        """sha256 of what fixes the embeddings: the model's class and weights (state-dict order,
        with dtype and shape), the tokenizer (vocabulary, rules, special tokens), max_length and
        dtype. Computed once (hashing a 1.7B model takes seconds)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f'{type(self.model).__name__}|T={self.max_length}|{self.dtype_name}'.encode())
            for name, t in self.model.state_dict().items():
                h.update(f'{name}:{t.dtype}:{tuple(t.shape)}'.encode())
                h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
            h.update(_tokenizer_bytes(self.tokenizer))
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def describe(self) -> dict:
        """What ``meta.json`` of the embedding cache (and checkpoint metadata) records."""
        return dict(path=self.path, family=self.family, model=type(self.model).__name__,
                    max_length=self.max_length, dtype=self.dtype_name,
                    hidden_size=self.feature_dim, fingerprint=self.fingerprint())


def _tokenizer_bytes(tokenizer) -> bytes:
    """The tokenizer's vocabulary and rules as bytes, independent of its padding/truncation state
    (which every call with ``padding=`` changes)."""
    backend = getattr(tokenizer, 'backend_tokenizer', None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop('padding', None)
        spec.pop('truncation', None)
    else:  # a python (e.g. sentencepiece) tokenizer: its vocabulary
        spec = sorted(tokenizer.get_vocab().items())
    special = {k: str(v) for k, v in tokenizer.special_tokens_map.items()}
    return json.dumps([type(tokenizer).__name__, special, tokenizer.padding_side, spec],
                      sort_keys=True).encode()


def _check_captions(captions) -> list:
    """A list of str; ``TypeError`` naming the first item that is not one."""
    if isinstance(captions, (str, bytes)):
        raise TypeError(f'captions must be a sequence of str, got a single '
                        f'{type(captions).__name__} {captions!r:.60}: wrap it in a list')
    captions = list(captions)
    for i, c in enumerate(captions):
        if not isinstance(c, str):
            raise TypeError(f'caption {i} is {type(c).__name__} {c!r:.60}, expected str')
    return captions
