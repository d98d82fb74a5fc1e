"""generate(..., compile=...): the compiled decode step samples the eager tokens, compiles one
graph per settings and reuses it on later calls (dynamo's graph count does not grow).

Most cases compile with the ``eager`` backend (dynamo's capture of the whole step, run by
eager kernels: seconds); one runs inductor, the CPU default of ``compile=True``, on a one-block
GPT (its C++ build is most of that test's time).
"""
import shutil

import pytest
import torch
from torch._dynamo.utils import counters

from gear.models.ar import LlamaGenGPT, generate
from gear.models.ar.compiled_step import default_compile_kwargs, uses_cuda_graphs

from .test_generate import TINY

COND = torch.tensor([0, 3, 4])


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    model = LlamaGenGPT(**TINY)
    torch.nn.init.normal_(model.output.weight, std=0.5)  # non-uniform logits
    return model


def one_block():
    torch.manual_seed(0)
    model = LlamaGenGPT(**(TINY | dict(n_layer=1)))
    torch.nn.init.normal_(model.output.weight, std=0.5)
    return model


def graphs() -> int:
    return counters['stats']['unique_graphs']


def assert_compiled_equals_eager(model, compile, kw):
    """Two seeds: the same tokens as eager (and uncached), one new graph, none for the second."""
    torch._dynamo.reset()
    before = graphs()
    kw = dict(num_tokens=8) | kw
    for seed in (7, 8):
        eager = generate(model, COND, generator=seed, **kw)
        assert torch.equal(eager, generate(model, COND, generator=seed, use_cache=False, **kw))
        compiled = generate(model, COND, generator=seed, compile=compile, **kw)
        assert torch.equal(compiled, eager), (seed, kw)
        assert graphs() == before + 1  # compiled once (first seed), reused for the second
    assert model.training and all(b.attention.kv_cache is None for b in model.layers)


@pytest.mark.parametrize('kw', [
    dict(cfg_scale=4.0, top_k=8, top_p=0.9, cfg_interval=2),
    dict(cfg_scale=2.0, cfg_schedule='linear', temperature=0.7),
    dict(cfg_scale=1.0, top_p=0.8),
    dict(cfg_scale=3.0, temperature=0),
])
def test_compiled_samples_the_eager_tokens(model, kw):
    """The CPU layout (attention over the written positions, the length a dynamic size)."""
    assert_compiled_equals_eager(model, dict(backend='eager'), kw)


def test_cuda_graph_layout_reads_the_whole_cache(model):
    """With a CUDA-graph mode the step keeps static shapes (whole cache, causal mask); on the
    CPU the mode replays nothing, so the same layout runs here."""
    assert uses_cuda_graphs(dict(mode='reduce-overhead')) and not uses_cuda_graphs({})
    assert default_compile_kwargs('cuda') == dict(mode='reduce-overhead')
    assert default_compile_kwargs('cpu') == {}
    assert_compiled_equals_eager(model, dict(backend='eager', mode='reduce-overhead'),
                                 dict(cfg_scale=4.0, top_k=8, cfg_interval=2))


@pytest.mark.skipif(shutil.which('g++') is None, reason='inductor needs a C++ compiler (g++)')
def test_inductor_compiled_step():
    """``compile=True`` on the CPU: inductor's kernels, the same tokens."""
    assert_compiled_equals_eager(one_block(), True, dict(cfg_scale=4.0, top_k=8, cfg_interval=2))


def test_compile_needs_the_cache(model):
    with pytest.raises(ValueError, match='compile needs use_cache'):
        generate(model, COND, compile=True, use_cache=False)
    with pytest.raises(TypeError, match='compile must be'):
        generate(model, COND, compile='yes')
