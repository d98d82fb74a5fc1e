"""KV-cache decoding and sampling: cached == uncached, CFG, filtering, inverse-CDF draws, cached
== full logits (whole cache or the written positions only)."""
import math

import pytest
import torch

from gear.models.ar import LlamaGenGPT, generate, sample_logits, top_k_top_p_filtering
from gear.models.ar.sampling import cfg_scale_at

TINY = dict(dim=32, n_layer=2, n_head=4, vocab_size=16, block_size=16, num_classes=5)


@pytest.fixture(scope='module')
def model():
    """A tiny GPT (train-mode dropouts on, to check that generate switches to eval)."""
    torch.manual_seed(0)
    model = LlamaGenGPT(**TINY)
    torch.nn.init.normal_(model.output.weight, std=0.5)
    return model


@pytest.mark.parametrize('kw', [
    dict(cfg_scale=4.0, top_k=8, top_p=0.9),
    dict(cfg_scale=2.0, cfg_schedule='linear', temperature=0.7),
    dict(cfg_scale=1.0, top_p=0.8),
])
def test_cached_equals_uncached(model, kw):
    cond = torch.tensor([0, 3, 4])
    cached = generate(model, cond, generator=7, **kw)
    uncached = generate(model, cond, generator=torch.Generator().manual_seed(7), use_cache=False,
                        **kw)
    assert cached.shape == (3, 16) and cached.dtype == torch.long
    assert torch.equal(cached, uncached)
    assert model.training  # mode restored
    assert all(b.attention.kv_cache is None for b in model.layers)  # caches freed
    assert not torch.equal(cached, generate(model, cond, generator=8, **kw))


def test_cfg_scale_one_is_plain_conditional_sampling(model):
    cond = torch.tensor([1, 2])
    out = generate(model, cond, num_tokens=6, top_k=5, generator=3)
    uniforms = torch.rand(6, 2, generator=torch.Generator().manual_seed(3))  # (N, B), drawn first
    tokens = torch.empty(2, 0, dtype=torch.long)
    model.eval()
    with torch.no_grad():
        for i in range(6):  # no batch doubling: batch 2 throughout
            logits = model(tokens, cond).logits[:, -1]  # (2, V)
            tok = sample_logits(logits, 1.0, 5, 1.0, uniform=uniforms[i])  # (2,)
            tokens = torch.cat([tokens, tok[:, None]], 1)
    model.train()
    assert torch.equal(out, tokens)


def test_cfg_combines_logits(model, monkeypatch):
    """With scale s the sampler sees u + s * (c - u) of the doubled batch (null class second)."""
    import gear.models.ar.sampling as gen_mod
    seen = []
    monkeypatch.setattr(gen_mod, 'sample_logits',
                        lambda logits, *a, **k: seen.append(logits) or logits.argmax(-1))
    cond = torch.tensor([1, 2])
    generate(model, cond, num_tokens=1, cfg_scale=3.0)
    model.eval()
    with torch.no_grad():
        c = model(torch.empty(2, 0, dtype=torch.long), cond).logits[:, -1]
        u = model(torch.empty(2, 0, dtype=torch.long), torch.full_like(cond, 5)).logits[:, -1]
    model.train()
    torch.testing.assert_close(seen[0], u + 3.0 * (c - u), rtol=1e-5, atol=1e-5)
    assert cfg_scale_at(0, 16, 3.0, 'linear') == 1.0 and cfg_scale_at(8, 16, 3.0, 'linear') == 2.0
    with pytest.raises(ValueError, match='cfg_schedule'):
        generate(model, cond, cfg_scale=2.0, cfg_schedule='cosine')


def test_cached_logits_equal_full_forward(model):
    model.eval()
    tokens, cond = torch.randint(0, 16, (2, 16)), torch.tensor([0, 4])
    with torch.no_grad():
        full = model(tokens[:, :-1], cond).logits  # (2, 16, V)
        model.setup_caches(2, 1 + 16)
        steps = [model.decode(None, cond, torch.arange(1))[:, -1]]  # predicts token 0
        for i in range(15):
            steps.append(model.decode(tokens[:, i:i + 1], None, torch.tensor([1 + i]))[:, -1])
        model.clear_caches()
        # attending to the written positions only (kv_len) is the same attention
        model.setup_caches(2, 1 + 16)
        short = [model.decode(None, cond, torch.arange(1), kv_len=1)[:, -1]]
        for i in range(15):
            short.append(model.decode(tokens[:, i:i + 1], None, torch.tensor([1 + i]),
                                      kv_len=2 + i)[:, -1])
        with pytest.raises(ValueError, match='kv_len'):
            model.decode(tokens[:, :1], None, torch.tensor([1]), kv_len=25)
        model.clear_caches()
        # prefill of a whole prefix at once gives the same logits too
        model.setup_caches(2, 17)
        prefill = model.decode(tokens[:, :7], cond, torch.arange(8))  # (2, 8, V)
        model.clear_caches()
    model.train()
    cached = torch.stack(steps, dim=1)  # (2, 16, V)
    assert ((cached - full).norm() / full.norm()).item() < 1e-5
    short = torch.stack(short, dim=1)  # (2, 16, V)
    assert ((short - full).norm() / full.norm()).item() < 1e-5
    assert ((prefill - full[:, :8]).norm() / full[:, :8].norm()).item() < 1e-5
    with pytest.raises(RuntimeError, match='setup_caches'):
        model.decode(None, cond, torch.arange(1))


def test_filtering():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0, 0.0]])
    removed = torch.isinf(top_k_top_p_filtering(logits, top_k=2))
    assert removed.tolist() == [[True, False, False, True, True]]
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = ~torch.isinf(top_k_top_p_filtering(probs.log(), top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]  # keeps the token that crosses 0.7
    kept = ~torch.isinf(top_k_top_p_filtering(probs.log(), top_p=0.1))
    assert kept.tolist() == [[True, False, False, False]]  # at least one token
    assert torch.equal(sample_logits(logits, temperature=0), torch.tensor([1]))
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_logits(logits, top_k=2, generator=gen) for _ in range(200)])
    assert set(draws.flatten().tolist()) == {1, 2}


def test_inverse_cdf_draws():
    """Token b is the first index whose cumulative probability exceeds u[b]; filtered tokens
    (first and last here) are never drawn, at u = 0 nor at the largest float32 below 1."""
    logits = torch.tensor([-math.inf, 0.0, 0.0, -math.inf, 0.0, -math.inf]).repeat(6, 1)
    u = torch.tensor([0.0, 0.3, 0.4, 0.7, 0.9, 1 - 2 ** -24])  # probs 1/3 at 1, 2 and 4
    assert sample_logits(logits, uniform=u).tolist() == [1, 1, 2, 4, 4, 4]
    # the frequencies follow the probabilities (3 sigma of 4000 draws)
    probs = torch.tensor([0.1, 0.6, 0.3])
    draws = sample_logits(probs.log().repeat(4000, 1), generator=torch.Generator().manual_seed(1))
    freq = torch.bincount(draws, minlength=3) / 4000.0
    assert torch.all((freq - probs).abs() < 3 * (probs * (1 - probs) / 4000) ** 0.5)


def test_cfg_interval_guides_the_first_tokens_only(model, monkeypatch):
    """cfg_interval k (LlamaGen's count): tokens 0..k + 1 see u + s * (c - u), later ones c."""
    import gear.models.ar.sampling as gen_mod
    seen = []
    monkeypatch.setattr(gen_mod, 'sample_logits',
                        lambda logits, *a, **k: seen.append(logits) or logits.argmax(-1))
    cond = torch.tensor([1, 2])
    tokens = generate(model, cond, num_tokens=5, cfg_scale=3.0, cfg_interval=1)  # (2, 5)
    model.eval()
    with torch.no_grad():
        c = model(tokens[:, :-1], cond).logits  # (2, 5, V): logits of tokens 0..4
        u = model(tokens[:, :-1], torch.full_like(cond, 5)).logits  # (2, 5, V)
    model.train()
    for step in range(5):
        want = u[:, step] + 3.0 * (c[:, step] - u[:, step]) if step <= 2 else c[:, step]
        torch.testing.assert_close(seen[step], want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match='cfg_interval'):
        generate(model, cond, cfg_scale=2.0, cfg_interval=-2)
