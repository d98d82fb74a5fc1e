"""One KV-cache decode step as one ``torch.compile``d graph: ``generate(..., compile=True)``.

``compiled_step(step_fn, compile, device)`` wraps ``sampling.decode_step`` (the cached forward
of the fed token, the CFG combination and the inverse-CDF sampling from a pre-drawn uniform)
in ``torch.compile(fullgraph=True, dynamic=False)``. Everything that changes from step to step
is a tensor input (token, position, uniform, guidance scale and flag), so one graph serves every
step and every later call with the same batch size, cache length and settings (temperature,
top-k/p, guidance on or off are constants of the graph: another value compiles another graph).
The compiled functions are cached per compile kwargs; dynamo's cache holds their graphs (at most
``torch._dynamo.config.recompile_limit`` per process, then it runs eagerly, with a warning).

Attention: inside the graph it uses the math SDPA backend, which inductor fuses into its own
kernels (the fused CPU flash kernel costs more for one query). How much of the static cache it
reads depends on whether CUDA graphs replay the step (``mode='reduce-overhead'`` or
``'max-autotune'``, the default on CUDA, as LlamaGen's ``sample_c2i.py --compile``):

- no CUDA graphs (the default on the CPU): the attention reads only the ``kv_len`` positions
  written so far (``decode(..., kv_len=)``); ``kv_len`` reaches the graph as the length of a
  marked-dynamic tensor, so one graph serves every length, without recompiling per step;
- CUDA graphs: shapes must be static, so the whole cache is read under the causal mask.

Both are the eager model's math; the eager path reads ``kv_len`` positions too.
"""
import functools
from typing import Callable, Union

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

CUDA_GRAPH_MODES = ('reduce-overhead', 'max-autotune')


def default_compile_kwargs(device) -> dict:
    """``torch.compile`` kwargs of ``compile=True``: CUDA graphs on CUDA, inductor's default
    elsewhere."""
    return dict(mode='reduce-overhead') if torch.device(device).type == 'cuda' else {}


def uses_cuda_graphs(kwargs: dict) -> bool:
    """Whether these compile kwargs replay CUDA graphs (then shapes must be static)."""
    return kwargs.get('mode') in CUDA_GRAPH_MODES or bool(
        kwargs.get('options', {}).get('triton.cudagraphs', False))


def _graph_body(step_fn: Callable, model, tok: Tensor, pos: Tensor, lens, *args, **kwargs):
    kv_len = None if lens is None else lens.shape[0]  # a SymInt: one graph for every length
    with sdpa_kernel([SDPBackend.MATH]):  # inductor fuses it (LlamaGen does the same)
        return step_fn(model, tok, pos, kv_len, *args, **kwargs)


@functools.lru_cache(maxsize=None)
def _compiled(kwargs_items: tuple):
    kwargs = {k: dict(v) if k == 'options' else v for k, v in kwargs_items}
    kwargs = dict(fullgraph=True, dynamic=False) | kwargs
    return torch.compile(_graph_body, **kwargs)


def compiled_step(step_fn: Callable, compile: Union[bool, dict], device) -> Callable:
    """``step_fn(model, tok, pos, kv_len, *args, **settings)`` run as one compiled graph.

    Args:
        step_fn: ``sampling.decode_step``.
        compile: True (``default_compile_kwargs(device)``) or a dict of ``torch.compile``
            kwargs (``fullgraph=True, dynamic=False`` unless given).
        device: where sampling runs (picks the default kwargs).

    Returns a function with ``step_fn``'s signature; its tokens are fresh tensors (a CUDA graph
    replay would overwrite the graph's own output).
    """
    if not isinstance(compile, (bool, dict)) or compile is False:
        raise TypeError(f'compile must be True or a dict of torch.compile kwargs, got {compile!r}')
    kwargs = default_compile_kwargs(device) if compile is True else dict(compile)
    fn = _compiled(tuple(sorted((k, _hashable(v)) for k, v in kwargs.items())))
    static = uses_cuda_graphs(kwargs)

    def step(model, tok: Tensor, pos: Tensor, kv_len: int, *args, **settings) -> Tensor:
        lens = None
        if not static:
            lens = torch.empty(kv_len, dtype=torch.uint8, device=tok.device)  # only its length
            torch._dynamo.mark_dynamic(lens, 0)
        return fn(step_fn, model, tok, pos, lens, *args, **settings).clone()  # (B,)
    return step


def _hashable(value):
    """Compile kwargs as a cache key (``options`` is a dict)."""
    return tuple(sorted(value.items())) if isinstance(value, dict) else value
