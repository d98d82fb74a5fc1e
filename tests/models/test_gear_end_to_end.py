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


def build():
    torch.manual_seed(0)
    MessageHub.get_instance('gear-end-to-end').update_info('iter', 0)
    model = MODELS.build(dict(TINY_GEAR, type='GEAREndToEnd', ntp_weight=1.0))
    with torch.no_grad():
        model.prior.ar.output.weight.normal_(0, 0.02)
    return model.train()


def test_straight_through_ntp_reaches_the_encoder_and_equals_hard_cross_entropy():
    m = build()
    x, cond = data()
    _, q = m.tokenizer(x)
    m.prior.eval()
    losses, _ = m.guidance_losses(q, cond, m.teacher_features(x))
    tokens = m.hard_tokens(q)
    logits = m.prior.ar(tokens[:, :-1], cond).logits
    hard_ce = F.cross_entropy(logits.flatten(0, 1), tokens.flatten())
    torch.testing.assert_close(losses['loss_ntp_st'], hard_ce, rtol=1e-5, atol=1e-6)
    encoder = [p for n, p in m.tokenizer.named_parameters() if n.startswith('encoder.')]
    grads = torch.autograd.grad(losses['loss_ntp_st'], encoder, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


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
