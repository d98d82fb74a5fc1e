"""Class-conditional sampling from an AR backbone: KV cache, classifier-free guidance, top-k/p.

``generate`` follows LlamaGen's ``autoregressive/models/generate.py``: prefill the class
position(s), then decode one token per step from the static KV cache. With guidance
(``cfg_scale != 1``) the batch is doubled with the null class and the logits combined as
``u + s * (c - u)``; with ``cfg_scale == 1`` there is no doubling. ``cfg_interval`` (LlamaGen's and
the official GEAR release's option) guides only the first ``cfg_interval + 2`` tokens (the
prefill token and decode steps ``0..cfg_interval``) and takes the conditional logits after them;
-1 guides every token. ``use_cache=False`` re-runs
the whole prefix every step (the reference path): with the same generator it samples the same
tokens, because every step draws the same random numbers from the same distribution.
"""
import math
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
                  generator: Optional[torch.Generator] = None) -> Tensor:
    """(B, V) logits -> (B,) sampled indices; ``temperature=0`` is greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = top_k_top_p_filtering(logits.float() / temperature, top_k, top_p)
    probs = F.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]  # (B,)


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
def generate(model: nn.Module, cond: Tensor, num_tokens: Optional[int] = None,
             cfg_scale: float = 1.0, cfg_schedule: str = 'constant', temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0,
             generator: Union[torch.Generator, int, None] = None,
             use_cache: bool = True, cfg_interval: int = -1) -> Tensor:
    """Sample ``num_tokens`` image tokens per label of ``cond`` (B,) -> LongTensor (B, num_tokens).

    Args:
        model: a ``LlamaGenGPT`` (any backbone with ``forward``/``setup_caches``/``decode``);
            run in eval mode here and put back in its mode afterwards.
        cond: (B,) class labels.
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
    """
    if cfg_schedule not in CFG_SCHEDULES:
        raise ValueError(f'cfg_schedule must be one of {CFG_SCHEDULES}, got {cfg_schedule!r}')
    num_tokens = model.block_size if num_tokens is None else num_tokens
    if not 0 < num_tokens <= model.block_size:
        raise ValueError(f'num_tokens must be in [1, {model.block_size}], got {num_tokens}')
    if cfg_interval < -1:
        raise ValueError(f'cfg_interval must be -1 (every token) or >= 0, got {cfg_interval}')
    generator = _as_generator(generator, cond.device)
    bsz, c = cond.shape[0], model.cls_token_num
    guided = cfg_scale != 1.0
    if guided:  # second half: the null class
        cond = torch.cat([cond, torch.full_like(cond, model.num_classes)])  # (2B,)

    def next_token(logits: Tensor, step: int) -> Tensor:  # (B or 2B, V) -> (B,)
        if guided:
            cond_logits, uncond_logits = logits.chunk(2)  # (B, V) each
            if 0 <= cfg_interval < step - 1:  # past the guided tokens
                return sample_logits(cond_logits, temperature, top_k, top_p, generator)
            scale = cfg_scale_at(step, num_tokens, cfg_scale, cfg_schedule)
            logits = uncond_logits + scale * (cond_logits - uncond_logits)  # (B, V)
        return sample_logits(logits, temperature, top_k, top_p, generator)

    was_training = model.training
    model.eval()
    out = torch.empty(bsz, 0, dtype=torch.long, device=cond.device)  # (B, 0)
    try:
        if use_cache:
            model.setup_caches(cond.shape[0], c + num_tokens)
            logits = model.decode(None, cond, torch.arange(c, device=cond.device))[:, -1]  # (B', V)
        for step in range(num_tokens):
            if not use_cache:
                prefix = out.repeat(2, 1) if guided else out  # (B', step)
                logits = model(prefix, cond).logits[:, -1]  # (B', V)
            tok = next_token(logits, step)  # (B,)
            out = torch.cat([out, tok[:, None]], dim=1)  # (B, step + 1)
            if use_cache and step + 1 < num_tokens:
                fed = tok.repeat(2)[:, None] if guided else tok[:, None]  # (B', 1)
                pos = torch.tensor([c + step], device=cond.device)
                logits = model.decode(fed, None, pos)[:, -1]  # (B', V)
    finally:
        if use_cache:
            model.clear_caches()
        model.train(was_training)
    return out
