"""LlamaGenGPT: golden match with the reference GPT, hidden read-out, early exit, soft input,
causality, class dropout, sizes and registry."""

import pytest
import torch

from gear.models.ar import GPT_SIZES, LlamaGenGPT
from gear.models.converters import convert_llamagen_gpt, gpt_arch_from_llamagen
from gear.registry import AR_BACKBONES

from ..conftest import golden_file

TINY = dict(dim=32, n_layer=3, n_head=4, vocab_size=16, block_size=16, num_classes=5,
            token_dropout_p=0.0, resid_dropout_p=0.0, ffn_dropout_p=0.0)


def tiny_model(seed: int = 0, **kw) -> LlamaGenGPT:
    """A tiny eval-mode GPT with a non-zero output head (the init zeroes it)."""
    torch.manual_seed(seed)
    model = LlamaGenGPT(**{**TINY, **kw}).eval()
    torch.nn.init.normal_(model.output.weight, std=0.5)
    return model


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope='module')
def golden(golden_dir):
    ref = torch.load(golden_file(golden_dir, 'ar_small.pt'), weights_only=True)
    model = LlamaGenGPT(**gpt_arch_from_llamagen(ref['arch'])).eval()
    model.load_state_dict(convert_llamagen_gpt(ref['state_dict']), strict=True)
    return model, ref


@pytest.mark.parametrize('soft', [False, True])
def test_golden_logits_and_hidden(golden, soft):
    model, ref = golden
    suffix = '_soft' if soft else ''
    tokens = ref['soft_tokens'] if soft else ref['tokens']  # (2, 16, 64) or (2, 16)
    with torch.no_grad():
        out = model(tokens[:, :-1], ref['labels'], return_hidden_at=2)  # 15 tokens fed
    assert out.logits.shape == ref['logits' + suffix].shape == (2, 16, 64)
    assert rel_err(out.logits, ref['logits' + suffix]) < 1e-5
    # 'hidden_after_layer2' = the stream after 2 of the 3 blocks (REPA's depth convention)
    assert rel_err(out.hidden, ref['hidden_after_layer2' + suffix]) < 1e-5


def test_rope_not_in_state_dict_and_fp32():
    model = tiny_model()
    assert 'freqs_cis' not in model.state_dict()
    assert model.freqs_cis.shape == (1 + 16, 32 // 4 // 2, 2)
    assert torch.all(model.freqs_cis[0] == 0)  # LlamaGen's zero rotation at the class position
    tokens, labels = torch.randint(0, 16, (2, 15)), torch.tensor([1, 2])
    ref = model(tokens, labels).logits
    out = model.double()(tokens, labels).logits  # the buffer is cast; RoPE is recomputed in fp32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_sizes_and_registry():
    assert GPT_SIZES['L'] == dict(n_layer=24, n_head=16, dim=1024)
    with torch.device('meta'):
        model = AR_BACKBONES.build(dict(type='LlamaGenGPT', size='L', n_layer=2))
        xl = LlamaGenGPT.from_size('XL')
    assert (model.dim, model.n_head, model.n_layer) == (1024, 16, 2)  # explicit values override
    assert (xl.dim, xl.n_head, xl.n_layer) == (1280, 20, 36)
    assert xl.num_params() - xl.num_params(exclude_embeddings=True) == (16384 + 1001) * 1280
    with pytest.raises(ValueError, match='unknown size'):
        LlamaGenGPT(size='M')
    with pytest.raises(ValueError, match='square'):
        LlamaGenGPT(**{**TINY, 'block_size': 12})


def test_init_output_head_zero():
    model = LlamaGenGPT(**TINY)
    assert torch.all(model.output.weight == 0)
    assert abs(model.tok_embeddings.weight.std().item() - 0.02) < 0.005
    assert model.cls_embedding.embedding_table.weight.shape == (5 + 1, 32)


def test_early_exit_same_hidden_and_grads():
    model = tiny_model()
    logits = torch.randn(2, 10, 16)
    grads, hiddens = [], []
    for early in (False, True):
        probs = logits.softmax(-1).requires_grad_(True)  # (B, L, K)
        out = model(probs, torch.tensor([0, 3]), return_hidden_at=2, early_exit=early)
        assert (out.logits is None) == early
        assert out.hidden.shape == (2, 11, 32)
        (out.hidden * torch.linspace(-1, 1, 32)).sum().backward()
        grads.append(probs.grad)
        hiddens.append(out.hidden.detach())
    assert torch.equal(hiddens[0], hiddens[1])
    assert torch.equal(grads[0], grads[1])
    out = model(probs, torch.tensor([0, 3]), return_hidden_at=0, early_exit=True)
    assert out.hidden.shape == (2, 11, 32)
    with pytest.raises(ValueError, match='return_hidden_at'):
        model(probs, torch.tensor([0, 3]), early_exit=True)
    with pytest.raises(ValueError, match='return_hidden_at'):
        model(probs, torch.tensor([0, 3]), return_hidden_at=4)


def test_one_hot_soft_input_equals_hard():
    model = tiny_model()
    tokens, labels = torch.randint(0, 16, (3, 15)), torch.tensor([0, 1, 4])
    hard = model(tokens, labels, return_hidden_at=1)
    soft = model(torch.nn.functional.one_hot(tokens, 16).float(), labels, return_hidden_at=1)
    torch.testing.assert_close(soft.logits, hard.logits, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(soft.hidden, hard.hidden, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match='K=16'):
        model(torch.rand(3, 15, 17), labels)
    with pytest.raises(ValueError, match='block_size'):
        model(torch.randint(0, 16, (3, 17)), labels)


def test_causality():
    model = tiny_model()
    tokens, labels = torch.randint(0, 16, (1, 15)), torch.tensor([2])
    ref = model(tokens, labels, return_hidden_at=2)
    for j in (0, 6, 14):
        changed = tokens.clone()
        changed[0, j] = (changed[0, j] + 1) % 16
        out = model(changed, labels, return_hidden_at=2)
        # output position k has seen the class token and tokens < k: positions <= j unchanged
        torch.testing.assert_close(out.logits[:, :j + 1], ref.logits[:, :j + 1], rtol=0, atol=0)
        torch.testing.assert_close(out.hidden[:, :j + 1], ref.hidden[:, :j + 1], rtol=0, atol=0)
        assert not torch.allclose(out.logits[:, j + 1:], ref.logits[:, j + 1:])


def test_class_dropout():
    model = tiny_model()
    tokens, labels = torch.randint(0, 16, (4, 8)), torch.tensor([0, 1, 2, 3])
    null = torch.full_like(labels, 5)
    dropped = model(tokens, labels, cond_drop_mask=torch.ones(4, dtype=torch.bool)).logits
    torch.testing.assert_close(dropped, model(tokens, null).logits, rtol=0, atol=0)
    partial = model(tokens, labels, cond_drop_mask=torch.tensor([True, False, True, False])).logits
    torch.testing.assert_close(partial, model(tokens, torch.tensor([5, 1, 5, 3])).logits)
    # train mode: the label becomes the null class with probability class_dropout_prob
    embedder = model.cls_embedding.train()
    torch.manual_seed(0)
    emb = embedder(torch.zeros(20000, dtype=torch.long))[:, 0]  # (N, dim)
    rate = (emb == embedder.embedding_table.weight[5]).all(-1).float().mean().item()
    assert abs(rate - 0.1) < 0.01, rate
    embedder.eval()
    assert torch.equal(embedder(torch.zeros(3, dtype=torch.long))[:, 0],
                       embedder.embedding_table.weight[[0, 0, 0]])


def _train_grads(model: LlamaGenGPT, soft: bool, seed: int = 3):
    """Loss and parameter gradients of one training-mode forward/backward (dropout on)."""
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 16, (2, 16), generator=gen)
    inputs = (torch.randn(2, 15, 16, generator=gen).softmax(-1) if soft else tokens[:, :-1])
    model.zero_grad()
    torch.manual_seed(seed)  # same dropout draws in both runs
    out = model(inputs, torch.tensor([1, 4]), return_hidden_at=2)
    loss = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), tokens.flatten())
    loss = loss + out.hidden.square().mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize('soft', [False, True])
def test_grad_checkpointing_identical_gradients(soft):
    """Per-block activation checkpointing recomputes with the same dropout masks: the loss and
    every parameter gradient equal those of the plain forward."""
    drop = dict(token_dropout_p=0.1, resid_dropout_p=0.1, ffn_dropout_p=0.1, attn_dropout_p=0.1)
    plain = tiny_model(**drop).train()
    ckpt = tiny_model(**drop, grad_checkpointing=True).train()
    ckpt.load_state_dict(plain.state_dict())
    loss_a, grads_a = _train_grads(plain, soft)
    loss_b, grads_b = _train_grads(ckpt, soft)
    assert torch.equal(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], rtol=0, atol=1e-7), name
    assert any(g.abs().sum() > 0 for n, g in grads_b.items() if n.startswith('layers.0.'))


def test_grad_checkpointing_saves_block_activations():
    """With checkpointing, autograd keeps fewer saved tensors (only block inputs)."""
    def n_saved(model):
        count = [0]

        def pack(t):
            count[0] += 1
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.randint(0, 16, (2, 15)), torch.tensor([0, 1]))
        return count[0]
    plain, ckpt = tiny_model().train(), tiny_model(grad_checkpointing=True).train()
    assert n_saved(ckpt) < n_saved(plain) / 2


def test_compile_flag_same_outputs_one_graph():
    """``compile`` (here the eager backend: no C++ toolchain needed) gives the eager outputs,
    and one compiled graph serves all blocks of the model and of its deepcopy (EMA)."""
    import copy

    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    eager = tiny_model()
    compiled = tiny_model(compile=dict(backend='eager'))
    ema = copy.deepcopy(compiled)
    tokens, cond = torch.randint(0, 16, (2, 15)), torch.tensor([0, 3])
    with torch.no_grad():
        ref = eager(tokens, cond).logits
        assert torch.allclose(compiled(tokens, cond).logits, ref, atol=1e-6)
        assert torch.allclose(ema(tokens, cond).logits, ref, atol=1e-6)
    assert counters['stats']['unique_graphs'] == 1
    with pytest.raises(TypeError, match='compile'):
        tiny_model(compile='yes')


class _LogitsOnly(torch.nn.Module):
    """fvcore traces with torch.jit: return tensors, not ARBackboneOutput."""

    def __init__(self, ar, **kw):
        super().__init__()
        self.ar, self.kw = ar, kw

    def forward(self, tokens, cond):
        out = self.ar(tokens, cond, **self.kw)
        return out.hidden if out.logits is None else out.logits


@pytest.mark.parametrize('soft,early_exit', [(False, False), (True, True)])
def test_flop_formula_matches_fvcore(soft, early_exit):
    """The analytic LlamaGen FLOP count (gear.utils.flops) agrees with fvcore within 2%."""
    from gear.utils.flops import count_flops, fvcore_forward_flops, llamagen_forward_flops
    model = LlamaGenGPT(dim=64, n_layer=3, n_head=4, vocab_size=128, block_size=64,
                        num_classes=5, ffn_multiple_of=32).eval()
    B, L = 3, 63
    tokens = (torch.randn(B, L, 128).softmax(-1) if soft else torch.randint(0, 128, (B, L)))
    kw = dict(return_hidden_at=2, early_exit=True) if early_exit else {}
    formula = llamagen_forward_flops(model, B, L, n_layers=2 if early_exit else None,
                                     soft=soft, head=not early_exit)
    fv = fvcore_forward_flops(_LogitsOnly(model, **kw), (tokens, torch.tensor([0, 1, 2])))
    assert formula == pytest.approx(fv, rel=0.02)
    with torch.no_grad():  # torch's own counter (what the benchmark uses) agrees too
        counted, _ = count_flops(model, tokens, torch.tensor([0, 1, 2]), **kw)
    assert formula == pytest.approx(counted, rel=0.02)
