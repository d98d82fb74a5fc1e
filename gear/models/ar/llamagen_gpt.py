"""LlamaGen's GPT (``autoregressive/models/gpt.py``), class- or caption-conditional, as a gear AR.

Sequence layout: ``cls_token_num`` condition positions (the class embedding, repeated; or, with
``caption_dim``, T = ``cls_token_num`` projected caption tokens, ``caption.py``), then the image
tokens fed. With a caption the attention is causal with the padded caption columns masked.
``forward(tokens[:, :-1], labels)`` returns logits at the ``L`` positions that predict image
tokens ``0 .. L-1`` (LlamaGen's training slice ``[cls_token_num - 1:]``), so position k of the
output predicts token k. ``tokens`` is either (B, L) indices or (B, L, K) probabilities,
embedded as ``probs @ tok_embeddings.weight`` (GEAR's soft branch).

``return_hidden_at=D`` returns the residual stream after D blocks (``layers[:D]``, before the
final norm), REPA's convention: D = 8 for GPT-L means the output of ``layers.7``; D = 0 is the
embeddings. The fixture key ``hidden_after_layer2`` of ``ar_small.pt`` (3 blocks) is the stream
after 2 blocks, i.e. ``return_hidden_at=2`` (after all 3 blocks it misses by a wide margin).
``early_exit=True`` stops there (no later blocks, final norm or head): same hidden, same grads.

Speed options of the teacher-forced (training) forward, off by default:
``grad_checkpointing=True`` recomputes each block in the backward pass
(``torch.utils.checkpoint``, ``use_reentrant=False``; dropout masks are replayed, so gradients
are identical) and ``compile=True`` (or a dict of ``torch.compile`` kwargs) runs each block
through one shared compiled function (``blocks.compiled_block``); KV-cache decoding stays eager.

KV-cache decoding (``setup_caches`` / ``decode`` / ``clear_caches``) lives here too; the
sampling loop is ``gear.models.ar.sampling``.
"""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from gear.registry import AR_BACKBONES
from .base import ARBackboneOutput
from .blocks import LabelEmbedder, RMSNorm, TransformerBlock, compiled_block, find_multiple
from .caption import CaptionEmbedder, caption_attn_mask
from .kv_cache import KVCache
from .rope import precompute_freqs_cis_2d

# LlamaGen's GPT sizes (n_layer, n_head, dim). S is not released (for small experiments).
GPT_SIZES = {
    'S': dict(n_layer=12, n_head=6, dim=384),
    'B': dict(n_layer=12, n_head=12, dim=768),     # 111M
    'L': dict(n_layer=24, n_head=16, dim=1024),    # 343M
    'XL': dict(n_layer=36, n_head=20, dim=1280),   # 775M
    'XXL': dict(n_layer=48, n_head=24, dim=1536),  # 1.4B
    '3B': dict(n_layer=24, n_head=32, dim=3200),   # 3.1B
}


@AR_BACKBONES.register_module()
class LlamaGenGPT(nn.Module):
    """LlamaGen class-conditional GPT with 2D RoPE; weights load from LlamaGen's c2i checkpoints.

    Args:
        dim: model width (filled from ``size`` when None).
        n_layer: number of transformer blocks (filled from ``size`` when None).
        n_head: attention heads (filled from ``size`` when None).
        vocab_size: tokenizer codebook size K.
        block_size: number of image tokens, a square grid (256 = 16 x 16).
        size: one of ``GPT_SIZES`` (S, B, L, XL, XXL, 3B); explicit dim/n_layer/n_head override it.
        num_classes: class labels; the embedding table has one more row, the null class.
        cls_token_num: class-embedding positions before the image tokens (1 for c2i; with more,
            the class embedding is repeated).
        ffn_multiple_of: SwiGLU hidden = find_multiple(int(2 * 4 * dim / 3), ffn_multiple_of).
        norm_eps: RMSNorm epsilon.
        rope_base: RoPE base.
        class_dropout_prob: probability of replacing the label by the null class in training.
        token_dropout_p: dropout on the embedded sequence.
        attn_dropout_p: dropout on attention weights (0 in LlamaGen).
        resid_dropout_p: dropout on the attention output projection.
        ffn_dropout_p: dropout on the SwiGLU output.
        drop_path_rate: stochastic depth, linear from 0 to this over the blocks.
        initializer_range: std of the normal init of linears and embeddings (head: zeros).
        cls_rotation: RoPE of the class positions, 'zeros' (LlamaGen, the released weights) or
            'identity' (see ``rope.py``).
        grad_checkpointing: recompute every block in the backward pass (activation
            checkpointing per block): less memory, about one more forward of compute.
        compile: ``torch.compile`` each block in the teacher-forced forward: False, True, or a
            dict of ``torch.compile`` kwargs (e.g. ``dict(mode='max-autotune')``).
        caption_dim: text-to-image: the text encoder's hidden size; ``cond`` is then a caption
            ``(emb (B, T, caption_dim), mask (B, T))`` with T = ``cls_token_num`` (LlamaGen: 120),
            dropped to the null caption with ``class_dropout_prob``; None: class labels.
        null_caption: 'learned' (LlamaGen) or 'empty' (the encoder's "", the official release).
        caption_mlp_bias: biases in the caption MLP (LlamaGen: True; official GEAR T2I: False).
    """

    def __init__(self, dim: Optional[int] = None, n_layer: Optional[int] = None,
                 n_head: Optional[int] = None, vocab_size: int = 16384, block_size: int = 256,
                 size: Optional[str] = None, num_classes: int = 1000, cls_token_num: int = 1,
                 ffn_multiple_of: int = 256, norm_eps: float = 1e-5, rope_base: float = 10000,
                 class_dropout_prob: float = 0.1, token_dropout_p: float = 0.1,
                 attn_dropout_p: float = 0.0, resid_dropout_p: float = 0.1,
                 ffn_dropout_p: float = 0.1, drop_path_rate: float = 0.0,
                 initializer_range: float = 0.02, cls_rotation: str = 'zeros',
                 grad_checkpointing: bool = False, compile: Union[bool, dict] = False,
                 caption_dim: Optional[int] = None, null_caption: str = 'learned',
                 caption_mlp_bias: bool = True):
        super().__init__()
        if not isinstance(compile, (bool, dict)):
            raise TypeError(f'compile must be a bool or a dict of torch.compile kwargs, '
                            f'got {compile!r}')
        self.grad_checkpointing = bool(grad_checkpointing)
        self.compile_kwargs = (dict(compile) if isinstance(compile, dict)
                               else {} if compile else None)
        if size is not None:
            if size not in GPT_SIZES:
                raise ValueError(f'unknown size {size!r}; choose from {list(GPT_SIZES)}')
            preset = GPT_SIZES[size]
            dim = preset['dim'] if dim is None else dim
            n_layer = preset['n_layer'] if n_layer is None else n_layer
            n_head = preset['n_head'] if n_head is None else n_head
        if dim is None or n_layer is None or n_head is None:
            raise ValueError('give dim, n_layer and n_head, or a size')
        grid = int(round(block_size ** 0.5))
        if grid * grid != block_size:
            raise ValueError(f'block_size {block_size} is not a square grid')
        self.dim, self.n_layer, self.n_head = dim, n_layer, n_head
        self.vocab_size, self.block_size, self.grid_size = vocab_size, block_size, grid
        self.num_classes, self.cls_token_num = num_classes, cls_token_num
        self.initializer_range = initializer_range
        self.rope_args = (grid, dim // n_head, rope_base, cls_token_num, cls_rotation)

        self.caption_dim = caption_dim
        self.cls_embedding = (
            LabelEmbedder(num_classes, dim, class_dropout_prob) if caption_dim is None else
            CaptionEmbedder(caption_dim, dim, cls_token_num, class_dropout_prob, null_caption,
                            caption_mlp_bias))
        self.tok_embeddings = nn.Embedding(vocab_size, dim)
        self.tok_dropout = nn.Dropout(token_dropout_p)
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, n_layer, device='cpu')]
        self.layers = nn.ModuleList(
            TransformerBlock(dim, n_head, ffn_multiple_of, norm_eps, attn_dropout_p,
                             resid_dropout_p, ffn_dropout_p, dpr[i]) for i in range(n_layer))
        self.norm = RMSNorm(dim, eps=norm_eps)
        self.output = nn.Linear(dim, vocab_size, bias=False)
        # recomputed from the config, never saved (released checkpoints have no freqs_cis)
        self.register_buffer('freqs_cis', precompute_freqs_cis_2d(*self.rope_args),
                             persistent=False)  # (C + block_size, head_dim // 2, 2)
        self.max_batch_size = self.max_seq_length = -1
        self.prefix_keep = None  # (B, C) bool while decoding with a caption prefix
        self.init_weights()

    @classmethod
    def from_size(cls, size: str, **kwargs) -> 'LlamaGenGPT':
        """``LlamaGenGPT.from_size('L', vocab_size=16384)``: a preset of ``GPT_SIZES``."""
        return cls(size=size, **kwargs)

    def init_weights(self) -> None:
        """normal(0, initializer_range) for linears and embeddings; the output head is zero."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=self.initializer_range)
        nn.init.zeros_(self.output.weight)

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; ``exclude_embeddings`` leaves out the token and class tables."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.tok_embeddings.weight.numel()
            n -= sum(p.numel() for p in self.cls_embedding.parameters())
        return n

    def _rope(self) -> Tensor:
        # ``model.half()`` casts buffers too; RoPE angles must stay float32, so recompute then
        if self.freqs_cis.dtype != torch.float32:
            return precompute_freqs_cis_2d(*self.rope_args).to(self.freqs_cis.device)
        return self.freqs_cis

    def embed(self, tokens: Optional[Tensor], cond, cond_drop_mask: Optional[Tensor] = None
              ) -> Tuple[Tensor, Optional[Tensor]]:
        """[condition embeddings] + [token embeddings] -> (B, S, dim), before dropout, and the
        caption's kept prefix columns (B, C) bool (None for class labels or no ``cond``)."""
        parts, keep = [], None
        if cond is not None:
            if self.caption_dim is None:
                cls = self.cls_embedding(cond, cond_drop_mask)  # (B, 1, dim)
                parts.append(cls.expand(-1, self.cls_token_num, -1))  # (B, C, dim)
            else:
                prefix, keep = self.cls_embedding(cond, cond_drop_mask)  # (B, C, dim), (B, C)
                parts.append(prefix)
        if tokens is not None:
            parts.append(self.embed_tokens(tokens))  # (B, L, dim)
        if not parts:
            raise ValueError('give tokens, cond or both')
        return torch.cat(parts, dim=1), keep  # (B, S, dim), (B, C) or None

    def embed_tokens(self, tokens: Tensor) -> Tensor:
        """(B, L) indices by lookup, or (B, L, K) probabilities times the table -> (B, L, dim)."""
        weight = self.tok_embeddings.weight  # (K, dim)
        if not tokens.is_floating_point():
            if tokens.dim() != 2:
                raise ValueError(f'hard tokens must be (B, L), got {tuple(tokens.shape)}')
            return self.tok_embeddings(tokens)  # (B, L, dim)
        if tokens.dim() != 3 or tokens.shape[-1] != self.vocab_size:
            raise ValueError(f'soft tokens must be (B, L, K={self.vocab_size}) probabilities, '
                             f'got {tuple(tokens.shape)}')
        return torch.matmul(tokens.to(weight.dtype), weight)  # (B, L, dim)

    def forward(self, tokens: Tensor, cond: Tensor, return_hidden_at: Optional[int] = None,
                early_exit: bool = False, cond_drop_mask: Optional[Tensor] = None
                ) -> ARBackboneOutput:
        """Teacher-forced forward over ``[class, tokens]`` (no cache).

        Args:
            tokens: (B, L) long indices or (B, L, K) float probabilities, L <= block_size.
            cond: (B,) class labels, or a caption (emb (B, C, caption_dim), mask (B, C)).
            return_hidden_at: D in [0, n_layer]: also return the stream after D blocks.
            early_exit: stop after D blocks (``logits`` is None); needs ``return_hidden_at``.
            cond_drop_mask: (B,) bool; True replaces the label (caption) by the null one.
        """
        if early_exit and return_hidden_at is None:
            raise ValueError('early_exit needs return_hidden_at')
        if return_hidden_at is not None and not 0 <= return_hidden_at <= self.n_layer:
            raise ValueError(f'return_hidden_at must be in [0, {self.n_layer}], '
                             f'got {return_hidden_at}')
        h, keep = self.embed(tokens, cond, cond_drop_mask)  # (B, C + L, dim), (B, C)
        h = self.tok_dropout(h)
        if h.shape[1] > self.freqs_cis.shape[0]:
            raise ValueError(f'{h.shape[1] - self.cls_token_num} tokens exceed block_size '
                             f'{self.block_size}')
        freqs_cis = self._rope()[:h.shape[1]]  # (C + L, head_dim // 2, 2)
        mask = None if keep is None else caption_attn_mask(
            keep, torch.arange(h.shape[1], device=h.device), h.shape[1])  # (B, 1, S, S)
        start = self.cls_token_num - 1  # outputs from the last class position on
        hidden = h if return_hidden_at == 0 else None
        n_run = return_hidden_at if early_exit else self.n_layer
        for i, layer in enumerate(self.layers[:n_run]):
            h = self._run_block(layer, h, freqs_cis, mask)  # (B, C + L, dim)
            if i + 1 == return_hidden_at:
                hidden = h
        if hidden is not None:
            hidden = hidden[:, start:]  # (B, L + 1, dim)
        if early_exit:
            return ARBackboneOutput(logits=None, hidden=hidden)
        logits = self.output(self.norm(h)).float()[:, start:]  # (B, L + 1, V)
        return ARBackboneOutput(logits=logits, hidden=hidden)

    def _run_block(self, layer: TransformerBlock, h: Tensor, freqs_cis: Tensor,
                   mask: Optional[Tensor] = None) -> Tensor:
        """One block of the teacher-forced forward, compiled and/or checkpointed if asked;
        ``mask`` (B, 1, S, S) bool with a caption prefix, None: causal."""
        fn = layer if self.compile_kwargs is None else compiled_block(**self.compile_kwargs)
        args = (h, freqs_cis, None, mask) if self.compile_kwargs is None else (
            layer, h, freqs_cis, mask)
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)  # (B, S, dim)
        return fn(*args)  # (B, S, dim)

    # --- KV-cache decoding ----------------------------------------------------------------------
    def setup_caches(self, max_batch_size: int, max_seq_length: Optional[int] = None,
                     dtype: Optional[torch.dtype] = None) -> None:
        """Allocate a static KV cache in every block (``max_seq_length`` rounded up to 8)."""
        weight = self.tok_embeddings.weight
        max_seq_length = find_multiple(max_seq_length or self.cls_token_num + self.block_size, 8)
        dtype = dtype or weight.dtype
        for block in self.layers:
            block.attention.kv_cache = KVCache(max_batch_size, max_seq_length, self.n_head,
                                               self.dim // self.n_head, dtype, weight.device)
        mask = torch.ones(max_seq_length, max_seq_length, dtype=torch.bool, device=weight.device)
        self.register_buffer('causal_mask', torch.tril(mask), persistent=False)  # (S_max, S_max)
        self.prefix_keep = None  # (B, C) bool: the prefilled caption's kept columns
        self.max_batch_size, self.max_seq_length = max_batch_size, max_seq_length

    def clear_caches(self) -> None:
        """Free the KV caches."""
        for block in self.layers:
            block.attention.kv_cache = None
        if hasattr(self, 'causal_mask'):
            del self.causal_mask
        self.prefix_keep = None
        self.max_batch_size = self.max_seq_length = -1

    def decode(self, tokens: Optional[Tensor], cond: Optional[Tensor], input_pos: Tensor,
               cond_drop_mask: Optional[Tensor] = None, kv_len: Optional[int] = None) -> Tensor:
        """Cached forward of new positions ``input_pos`` (S,) -> logits (B, S, V) (float32).

        Prefill: ``decode(None, labels, arange(C))`` (or a caption: its kept columns are held
        for the later steps' masks, until ``clear_caches``); then one token per step:
        ``decode(tok (B, 1), None, tensor([C + i]))`` gives the logits of token i + 1.
        ``kv_len``: attend to cache positions ``[0, kv_len)`` only (they must include every
        position attended to, ``kv_len > input_pos.max()``; ``C + i + 1`` above), reading less of
        the cache; None attends over the whole static cache under the causal mask (same math).
        """
        if self.max_seq_length < 0:
            raise RuntimeError('call setup_caches() before decode()')
        if isinstance(kv_len, int) and not 0 < kv_len <= self.max_seq_length:
            raise ValueError(f'kv_len must be in [1, {self.max_seq_length}], got {kv_len}')
        h, keep = self.embed(tokens, cond, cond_drop_mask)  # (B, S, dim), (B, C) or None
        h = self.tok_dropout(h)
        freqs_cis = self._rope()[input_pos]  # (S, head_dim // 2, 2)
        if keep is not None:
            self.prefix_keep = keep
        if self.caption_dim is None:
            mask = self.causal_mask[input_pos][None, None]  # (1, 1, S, S_max)
            if kv_len is not None:
                mask = mask[..., :kv_len]  # (1, 1, S, kv_len)
        else:
            if self.prefix_keep is None:
                raise RuntimeError('prefill the caption (decode(None, caption, arange(C))) first')
            mask = caption_attn_mask(self.prefix_keep, input_pos,
                                     kv_len or self.max_seq_length)  # (B, 1, S, kv_len)
        for layer in self.layers:
            h = layer(h, freqs_cis, input_pos, mask, kv_len)  # (B, S, dim)
        return self.output(self.norm(h)).float()  # (B, S, V)
