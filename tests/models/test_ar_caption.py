"""Caption conditioning of the AR: the prefix, its mask, CFG's null caption and the KV cache."""
import pytest
import torch

from gear.models.ar.llamagen_gpt import LlamaGenGPT
from gear.models.ar.sampling import generate

T, C_TEXT = 6, 12


def _model(null='learned', **kw):
    torch.manual_seed(0)
    m = LlamaGenGPT(dim=32, n_layer=3, n_head=2, vocab_size=50, block_size=16, cls_token_num=T,
                    caption_dim=C_TEXT, null_caption=null, ffn_multiple_of=16, **kw).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2)  # the zero-initialised head would make every logit equal
    return m


def _caption():
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(3, T, C_TEXT, generator=g)  # (B, T, C)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6, [0] * 6]).bool()  # (B, T); row 2: no token
    return emb, mask


@pytest.mark.parametrize('null', ['learned', 'empty'])
def test_cached_decoding_equals_uncached_with_a_caption_prefix(null):
    m, cap = _model(null), _caption()
    for cfg in (1.0, 3.0):
        a = generate(m, cap, cfg_scale=cfg, generator=0, use_cache=True, top_k=20)
        b = generate(m, cap, cfg_scale=cfg, generator=0, use_cache=False, top_k=20)
        assert torch.equal(a, b) and a.shape == (3, 16)
    # and the logits themselves: prefill + steps == the teacher-forced forward
    tok = a
    full = m(tok[:, :-1], cap).logits  # (B, 16, V)
    m.setup_caches(3, T + 16)
    steps = [m.decode(None, cap, torch.arange(T))[:, -1]]
    for i in range(15):
        steps.append(m.decode(tok[:, i:i + 1], None, torch.tensor([T + i]), kv_len=T + i + 1)[:, -1])
    m.clear_caches()
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_padded_caption_columns_change_nothing_and_valid_ones_do():
    m, (emb, mask) = _model(), _caption()
    tok = torch.randint(0, 50, (3, 16))
    out = m(tok[:, :-1], (emb, mask), return_hidden_at=2)
    noisy = emb + torch.randn_like(emb) * (~mask[..., None])  # change only padded positions
    out2 = m(tok[:, :-1], (noisy, mask), return_hidden_at=2)
    assert torch.equal(out.logits, out2.logits) and torch.equal(out.hidden, out2.hidden)
    assert out.logits.isfinite().all()  # row 2 has no valid token: the diagonal keeps it finite
    changed = emb.clone()
    changed[0, 0] += 1.0  # a valid token of row 0
    out3 = m(tok[:, :-1], (changed, mask))
    assert not torch.allclose(out3.logits[0], out.logits[0])
    torch.testing.assert_close(out3.logits[1:], out.logits[1:])


def test_position_k_sees_tokens_before_k_only():
    m, cap = _model(), _caption()
    tok = torch.randint(0, 50, (3, 16))
    out = m(tok[:, :-1], cap, return_hidden_at=2)
    tok2 = tok.clone()
    tok2[:, 7] = (tok[:, 7] + 1) % 50
    out2 = m(tok2[:, :-1], cap, return_hidden_at=2)
    assert out.hidden.shape == (3, 16, 32)
    torch.testing.assert_close(out2.hidden[:, :8], out.hidden[:, :8])  # 0..7 never saw token 7
    assert not torch.allclose(out2.hidden[:, 8], out.hidden[:, 8])


def test_early_exit_and_soft_tokens_with_a_caption():
    m, cap = _model(), _caption()
    tok = torch.randint(0, 50, (3, 16))
    probs = torch.nn.functional.one_hot(tok, 50).float()  # (B, N, K)
    full = m(tok[:, :-1], cap, return_hidden_at=2)
    soft = m(probs[:, :-1], cap, return_hidden_at=2, early_exit=True)
    assert soft.logits is None
    torch.testing.assert_close(soft.hidden, full.hidden)


def test_caption_dropout_uses_the_null_caption():
    m, (emb, mask) = _model('empty'), _caption()
    null_emb, null_mask = torch.randn(1, T, C_TEXT), torch.tensor([[1, 0, 0, 0, 0, 0]]).bool()
    m.cls_embedding.set_null_caption(null_emb, null_mask)
    tok = torch.randint(0, 50, (3, 16))
    dropped = m(tok[:, :-1], (emb, mask), cond_drop_mask=torch.tensor([True, False, True])).logits
    null = m(tok[:, :-1], (null_emb.expand(3, -1, -1), null_mask.expand(3, -1))).logits
    kept = m(tok[:, :-1], (emb, mask)).logits
    torch.testing.assert_close(dropped[[0, 2]], null[[0, 2]])
    torch.testing.assert_close(dropped[1], kept[1])
    m.train()
    m.cls_embedding.dropout_prob = 1.0  # training: every caption dropped
    torch.manual_seed(3)
    m.tok_dropout.p = 0.0
    for layer in m.layers:
        layer.attention.resid_dropout.p = layer.feed_forward.ffn_dropout.p = 0.0
    torch.testing.assert_close(m(tok[:, :-1], (emb, mask)).logits, null)
    assert 'cls_embedding.null_emb' in m.state_dict()  # 'empty': checkpoints carry it


def test_caption_shape_errors_name_the_keys():
    m, (emb, mask) = _model(), _caption()
    tok = torch.randint(0, 50, (3, 16))
    with pytest.raises(ValueError, match='cls_token_num=6'):
        m(tok, (emb[:, :5], mask[:, :5]))
    with pytest.raises(ValueError, match='cond=\\(emb'):
        m(tok, torch.zeros(3, dtype=torch.long))


def test_padded_columns_are_invisible_to_image_positions():
    """Caption prefixes rotate by zeros (as LlamaGen's class positions), so where a caption token
    sits does not matter; what a query attends to does. The image positions of a 3-token caption
    padded to 6 must then equal those of the same caption in a 3-token prefix: they attend to the
    valid columns only."""
    m6, (emb, mask) = _model('empty'), _caption()
    torch.manual_seed(0)
    m3 = LlamaGenGPT(dim=32, n_layer=3, n_head=2, vocab_size=50, block_size=16, cls_token_num=3,
                     caption_dim=C_TEXT, null_caption='empty', ffn_multiple_of=16).eval()
    state = {k: v for k, v in m6.state_dict().items() if not k.startswith('cls_embedding.null')}
    m3.load_state_dict(state, strict=False)
    tok = torch.randint(0, 50, (1, 16))
    padded = m6(tok[:, :-1], (emb[:1], mask[:1])).logits  # valid tokens 0..2, then 3 pads
    short = m3(tok[:, :-1], (emb[:1, :3], mask[:1, :3])).logits
    torch.testing.assert_close(padded[:, 1:], short[:, 1:], atol=1e-5, rtol=1e-5)
