"""Sampling from an AR backbone: KV cache, classifier-free guidance, top-k/p.

``generate`` follows LlamaGen's ``autoregressive/models/generate.py``: prefill the condition
position(s) (a class, or a caption prefix), then decode one token per step from the static KV
cache. With guidance (``cfg_scale != 1``) the batch is doubled with the null class (the null
caption) and the logits combined as
``u + s * (c - u)``; with ``cfg_scale == 1`` there is no doubling. ``cfg_interval`` (LlamaGen's and
the official GEAR release's option) guides only the first ``cfg_interval + 2`` tokens (the
prefill token and decode steps ``0..cfg_interval``) and takes the conditional logits after them;
-1 guides every token. ``use_cache=False`` re-runs
the whole prefix every step (the reference path): with the same generator it samples the same
tokens, because every step draws the same random numbers from the same distribution.

Random numbers: ``generate`` draws them all first, one uniform per image and token
(``torch.rand(num_tokens, B, generator=generator)``), and token i of row b is the inverse CDF of
its (filtered, tempered) distribution at ``u[i, b]``: the first index whose cumulative
probability exceeds it (``sample_logits``). So every path (cached, uncached, compiled) consumes
the generator identically, and one token costs one uniform instead of multinomial's V
exponentials. ``compile=True`` runs each decode step (cached forward, CFG combination, sampling)
as one ``torch.compile``d graph (``compiled_step.py``); it samples the tokens of the eager path.
"""
import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .caption import cond_batch_size, cond_device, with_null
from .compiled_step import compiled_step

CFG_SCHEDULES = ('constant', 'linear')


def top_k_top_p_filtering(logits: Tensor, top_k: int = 0, top_p: float = 1.0,
                          filter_value: float = -math.inf, min_tokens_to_keep: int = 1) -> Tensor:
    """Mask (B, V) logits outside the top-k and outside the nucleus of mass ``top_p``.

    ``top_k=0`` and ``top_p=1.0`` disable the respective filter; at least
    ``min_tokens_to_keep`` tokens always survive (HF / LlamaGen semantics).
    """
    if top_k > 0:
        top_k = min(max(top_k, min_tokens_to_keep), logits.size(-1))
        kth = torch.topk(logits, top_k)[0][..., -1, None]  # (B, 1)
        logits = logits.masked_fill(logits < kth, filter_value)
    if top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, descending=True)  # (B, V)
        cum_probs = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)  # (B, V)
        remove = cum_probs > top_p  # (B, V), in sorted order
        # shift right: keep the first token that crosses top_p
        remove[..., 1:] = remove[..., :-1].clone()  # (B, V - 1)
        remove[..., :min_tokens_to_keep] = False  # (B, min_tokens_to_keep)
        logits = logits.masked_fill(remove.scatter(-1, sorted_idx, remove), filter_value)
    return logits


def sample_logits(logits: Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  generator: Optional[torch.Generator] = None,
                  uniform: Optional[Tensor] = None) -> Tensor:
    """(B, V) logits -> (B,) sampled indices; ``temperature=0`` is greedy (argmax).

    Inverse-CDF sampling: row b takes the first index whose cumulative probability exceeds
    ``uniform[b]`` (B,) in [0, 1), drawn here from ``generator`` when not given: the count of
    cumulative weights at or below ``u * total``. Filtered tokens (weight 0) are never taken,
    and neither is an index past the last: ``u * total < total`` for every float32 ``u < 1``.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    if uniform is None:
        uniform = torch.rand(logits.shape[0], generator=generator, device=logits.device)  # (B,)
    logits = top_k_top_p_filtering(logits.float() / temperature, top_k, top_p)
    weights = torch.exp(logits - logits.amax(dim=-1, keepdim=True))  # (B, V), softmax * total
    cdf = weights.cumsum(dim=-1)  # (B, V), last column: the total
    threshold = uniform[:, None] * cdf[:, -1:]  # (B, 1)
    return (cdf <= threshold).sum(dim=-1)  # (B,) int64


def guided_logits(logits: Tensor, scale: Tensor, guide: Tensor) -> Tensor:
    """CFG of (2B, V) logits (conditional half first) -> (B, V): ``u + s * (c - u)`` where
    ``guide`` (a 0-d bool tensor) is True, else the conditional logits ``c`` alone."""
    cond_logits, uncond_logits = logits.chunk(2)  # (B, V) each
    combined = uncond_logits + scale * (cond_logits - uncond_logits)  # (B, V)
    return torch.where(guide, combined, cond_logits)  # (B, V)


def next_token(logits: Tensor, uniform: Tensor, scale: Optional[Tensor], guide: Optional[Tensor],
               temperature: float, top_k: int, top_p: float) -> Tensor:
    """(B or 2B, V) logits of one step -> (B,) tokens; ``scale`` None: no guidance."""
    if scale is not None:
        logits = guided_logits(logits, scale, guide)  # (B, V)
    return sample_logits(logits, temperature, top_k, top_p, uniform=uniform)


def decode_step(model: nn.Module, tok: Tensor, pos: Tensor, kv_len: int, uniform: Tensor,
                scale: Optional[Tensor], guide: Optional[Tensor], temperature: float,
                top_k: int, top_p: float) -> Tensor:
    """One cached step: feed ``tok`` (B,) at ``pos`` (1,), attending to the first ``kv_len``
    cache positions (None: all), and sample the next token (B,); with ``scale`` the fed batch is
    doubled (the null class second, as set up by the prefill)."""
    fed = (tok.repeat(2) if scale is not None else tok)[:, None]  # (B', 1)
    logits = model.decode(fed, None, pos, kv_len=kv_len)[:, -1]  # (B', V)
    return next_token(logits, uniform, scale, guide, temperature, top_k, top_p)


def cfg_scale_at(step: int, num_tokens: int, cfg_scale: float, schedule: str) -> float:
    """Guidance scale of token ``step``: constant, or linear (MAR): 1 + (s - 1) * step / N."""
    if schedule == 'constant':
        return cfg_scale
    if schedule == 'linear':
        return 1.0 + (cfg_scale - 1.0) * step / num_tokens
    raise ValueError(f'cfg_schedule must be one of {CFG_SCHEDULES}, got {schedule!r}')


def _as_generator(generator: Union[torch.Generator, int, None],
                  device) -> Optional[torch.Generator]:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    return torch.Generator(device=device).manual_seed(int(generator))


@torch.no_grad()
def generate(model: nn.Module, cond, num_tokens: Optional[int] = None,
             cfg_scale: float = 1.0, cfg_schedule: str = 'constant', temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0,
             generator: Union[torch.Generator, int, None] = None,
             use_cache: bool = True, cfg_interval: int = -1,
             compile: Union[bool, dict] = False) -> Tensor:
    """Sample ``num_tokens`` image tokens per condition -> LongTensor (B, num_tokens).

    Args:
        model: a ``LlamaGenGPT`` (any backbone with ``forward``/``setup_caches``/``decode``);
            run in eval mode here and put back in its mode afterwards.
        cond: (B,) class labels, or a caption (emb (B, T, C), mask (B, T)) from the text
            encoder of a caption-conditional backbone.
        num_tokens: tokens per image, default ``model.block_size``.
        cfg_scale: classifier-free guidance scale s; 1.0 disables guidance (no batch doubling).
        cfg_schedule: 'constant', or 'linear' (scale 1 + (s - 1) * i / N at token i).
        temperature: softmax temperature; 0 samples greedily.
        top_k: keep the k most likely tokens (0: all).
        top_p: nucleus sampling mass (1.0: all).
        generator: a ``torch.Generator`` on ``cond``'s device, an int seed, or None.
        use_cache: KV-cache decoding; False re-runs the full prefix each step.
        cfg_interval: -1 guides every token; k >= 0 guides tokens 0..k + 1 (LlamaGen's count:
            the prefill token, then decode steps 0..k) and samples the rest from the
            conditional logits alone.
        compile: run each decode step as one ``torch.compile``d graph (``compiled_step.py``):
            True, or a dict of ``torch.compile`` kwargs. Compiled once per batch size, cache
            length and settings in a process, then reused; needs ``use_cache``. The prefill
            stays eager. Same tokens as the eager path (up to floating-point rounding).
    """
    if cfg_schedule not in CFG_SCHEDULES:
        raise ValueError(f'cfg_schedule must be one of {CFG_SCHEDULES}, got {cfg_schedule!r}')
    num_tokens = model.block_size if num_tokens is None else num_tokens
    if not 0 < num_tokens <= model.block_size:
        raise ValueError(f'num_tokens must be in [1, {model.block_size}], got {num_tokens}')
    if cfg_interval < -1:
        raise ValueError(f'cfg_interval must be -1 (every token) or >= 0, got {cfg_interval}')
    if compile is not False and not use_cache:
        raise ValueError('compile needs use_cache=True (it compiles the cached decode step)')
    device = cond_device(cond)
    generator = _as_generator(generator, device)
    bsz, c = cond_batch_size(cond), model.cls_token_num
    uniforms = torch.rand(num_tokens, bsz, generator=generator, device=device)  # (N, B)
    guided = cfg_scale != 1.0
    scales = guides = [None] * num_tokens
    if guided:  # second half: the null condition; per token i its scale and whether it is guided
        cond = with_null(model, cond)  # (2B,) or ((2B, T, C), (2B, T))
        scales = torch.tensor([cfg_scale_at(i, num_tokens, cfg_scale, cfg_schedule)
                               for i in range(num_tokens)], device=device)  # (N,)
        guides = torch.tensor([not 0 <= cfg_interval < i - 1 for i in range(num_tokens)],
                              device=device)  # (N,) bool
    settings = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    step_fn = decode_step if compile is False else compiled_step(decode_step, compile, device)

    was_training = model.training
    model.eval()
    tokens = []  # (B,) each
    try:
        if not use_cache:
            for i in range(num_tokens):
                prefix = (torch.stack(tokens, 1) if tokens else
                          torch.empty(bsz, 0, dtype=torch.long, device=device))  # (B, i)
                prefix = prefix.repeat(2, 1) if guided else prefix  # (B', i)
                logits = model(prefix, cond).logits[:, -1]  # (B', V)
                tokens.append(next_token(logits, uniforms[i], scales[i], guides[i], **settings))
            return torch.stack(tokens, 1)  # (B, N)
        model.setup_caches(cond_batch_size(cond), c + num_tokens)
        logits = model.decode(None, cond, torch.arange(c, device=device), kv_len=c)[:, -1]
        tokens.append(next_token(logits, uniforms[0], scales[0], guides[0], **settings))
        positions = torch.arange(c, c + num_tokens, device=device)  # (N,)
        for i in range(1, num_tokens):  # feed token i - 1 at position c + i - 1
            tokens.append(step_fn(model, tokens[-1], positions[i - 1:i], c + i, uniforms[i],
                                  scales[i], guides[i], **settings))  # (B,)
        return torch.stack(tokens, 1)  # (B, N)
    finally:
        if use_cache:
            model.clear_caches()
        model.train(was_training)
