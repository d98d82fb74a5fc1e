"""The straight-through end-to-end ablation: the next-token loss does reach the tokenizer (unlike
GEAR), its forward value is the hard cross-entropy, and the prior still does not move in the
tokenizer step."""
import copy

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from gear.registry import MODELS

from .test_gear_invariants import OPTIM, TINY_GEAR, data, snapshot, unchanged


def build(ntp_weight: float = 1.0):
    torch.manual_seed(0)
    MessageHub.get_instance('gear-end-to-end').update_info('iter', 0)
    model = MODELS.build(dict(TINY_GEAR, type='GEAREndToEnd', ntp_weight=ntp_weight))
    with torch.no_grad():
        model.prior.ar.output.weight.normal_(0, 0.02)
    return model.train()


def tokenizer_step(ntp_weight: float):
    """One real tokenizer phase; returns (logs, the hard CE of the frozen prior on the step's
    tokens, computed independently, encoder gradients of the phase's loss)."""
    m = build(ntp_weight)
    optim = build_optim_wrapper(m, copy.deepcopy(OPTIM))
    x, cond = data()
    x_hat, q = m.tokenizer(x)
    with torch.no_grad():
        m.prior.eval()
        tokens = q.indices.flatten(1)  # (B, N)
        logits = m.prior.ar(tokens[:, :-1], cond).logits  # (B, N, K)
        hard_ce = F.cross_entropy(logits.flatten(0, 1), tokens.flatten())
        m.prior.train()
    grads = {}
    for name, p in m.tokenizer.named_parameters():
        if name.startswith('encoder.'):
            p.register_hook(lambda g, name=name: grads.__setitem__(name, g.clone()))
    logs = m.tokenizer_phase(x, x_hat, q, cond, m.teacher_features(x), optim['tokenizer'], 0)
    return logs, hard_ce, grads


def test_straight_through_ntp_reaches_the_encoder_and_equals_hard_cross_entropy():
    logs, hard_ce, grads = tokenizer_step(1.0)
    torch.testing.assert_close(logs['tokenizer/loss_ntp_st'], hard_ce, rtol=1e-5, atol=1e-6)
    logs0, _, grads0 = tokenizer_step(0.0)  # same model and batch, the term weighted 0
    assert logs0['tokenizer/loss_ntp_st'] == 0
    assert grads.keys() == grads0.keys() and grads
    assert any(not torch.allclose(grads[n], grads0[n]) for n in grads)  # the CE moved the encoder


def test_tokenizer_step_moves_the_tokenizer_but_not_the_prior():
    m = build()
    optim = build_optim_wrapper(m, copy.deepcopy(OPTIM))
    prior, tokenizer = snapshot(m.prior), snapshot(m.tokenizer)
    x, cond = data()
    x_hat, q = m.tokenizer(x)
    logs = m.tokenizer_phase(x, x_hat, q, cond, m.teacher_features(x), optim['tokenizer'], 0)
    assert 'tokenizer/loss_ntp_st' in logs and 'tokenizer/loss_align_soft' in logs
    assert unchanged(prior, m.prior)
    assert not unchanged(tokenizer, m.tokenizer)
