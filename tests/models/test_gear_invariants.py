"""The gradient routing of one GEAR iteration (DESIGN.md), proven on a tiny model.

- the next-token loss gives exactly zero gradient to every tokenizer parameter;
- the soft-branch alignment reaches the encoder and codebook (not the decoder) and changes no
  AR or projector parameter;
- the AR and projectors are unchanged by the tokenizer step; the tokenizer is unchanged by the
  discriminator and prior steps;
- early exit gives the same hidden state and the same tokenizer gradients;
- the straight-through read-out's forward value is the hard one-hot.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from gear.registry import MODELS
from gear.utils.frozen import frozen

K = 16
TINY_GEAR = dict(
    type='GEAR',
    tokenizer=dict(type='VQTokenizer', ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=8,
                   quantizer=dict(type='VectorQuantizer', codebook_size=K, embed_dim=4)),
    discriminator=dict(type='PatchGANDiscriminator', base_channels=8, num_layers=2),
    recon_loss=dict(type='L1Loss'),
    gan_loss=dict(type='GANLoss', loss_type='hinge', loss_weight=0.1, disc_start=0),
    teachers=dict(effnet=dict(type='EfficientNetLite0Teacher', grid_size=8, image_size=64)),
    prior=dict(ar=dict(type='LlamaGenGPT', dim=32, n_layer=2, n_head=2, vocab_size=K,
                       block_size=64, num_classes=10, ffn_multiple_of=32),
               align_loss=dict(type='REPALoss', projector_hidden_dim=32), align_depth=1),
    readout=dict(type='SoftReadout', tau=0.1), lambda_align=0.5, lambda_ar=0.5, ema_decay=0.9)
_opt = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2))
OPTIM = dict(constructor='ModuleOptimWrapperConstructor', tokenizer=_opt, discriminator=_opt,
             prior=_opt)


@pytest.fixture(scope='module')
def built():
    torch.manual_seed(0)
    MessageHub.get_instance('gear-invariants').update_info('iter', 0)
    model = MODELS.build(TINY_GEAR)
    with torch.no_grad():  # leave the zero init of the AR head, so the NTP gradient is generic
        model.prior.ar.output.weight.normal_(0, 0.02)
    return model


@pytest.fixture
def model(built):
    m = copy.deepcopy(built).train()
    return m, build_optim_wrapper(m, copy.deepcopy(OPTIM))


def data(n=2):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 16, 16, generator=g) * 2 - 1, torch.tensor([3, 7])[:n]


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def unchanged(before, module):
    return all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def no_grads(module):
    return all(p.grad is None or not p.grad.any() for p in module.parameters())


def test_ntp_loss_gives_zero_gradient_to_every_tokenizer_parameter(model):
    m, _ = model
    x, cond = data()
    _, q = m.tokenizer(x)
    losses, _ = m.prior.ntp_and_align(q.indices.detach().flatten(1), cond, m.teacher_features(x))
    params = list(m.tokenizer.parameters())
    grads = torch.autograd.grad(losses['loss_ntp'], params, allow_unused=True)
    assert all(g is None or not g.any() for g in grads)
    prior_grads = torch.autograd.grad(losses['loss_ntp'], list(m.prior.ar.parameters()),
                                      allow_unused=True)
    assert any(g is not None and g.any() for g in prior_grads)  # it does train the AR


def test_soft_alignment_reaches_encoder_and_codebook_only(model):
    m, _ = model
    x, cond = data()
    _, q = m.tokenizer(x)
    with frozen(m.prior, eval_mode=True):
        loss, _ = m.prior.align(m.readout(q.d), cond, m.teacher_features(x))
        tok = dict(m.tokenizer.named_parameters())
        grads = dict(zip(tok, torch.autograd.grad(loss, list(tok.values()), allow_unused=True)))
        assert all(not p.requires_grad for p in m.prior.parameters())
    nonzero = {k for k, g in grads.items() if g is not None and g.abs().sum() > 0}
    assert any(k.startswith('encoder.') for k in nonzero)
    assert 'quant_conv.weight' in nonzero and 'quantizer.embedding.weight' in nonzero
    assert not any(k.startswith(('decoder.', 'post_quant_conv.')) for k in nonzero)


def test_tokenizer_step_changes_no_prior_or_discriminator_state(model):
    m, optim = model
    x, cond = data()
    prior, disc, tok = snapshot(m.prior), snapshot(m.discriminator), snapshot(m.tokenizer)
    x_hat, q = m.tokenizer(x)
    logs = m.tokenizer_phase(x, x_hat, q, cond, m.teacher_features(x), optim['tokenizer'], step=0)
    assert logs['tokenizer/loss_align_soft'] != 0 and 'tokenizer/loss_gan' in logs
    assert unchanged(prior, m.prior) and no_grads(m.prior)
    assert unchanged(disc, m.discriminator) and no_grads(m.discriminator)
    assert not unchanged(tok, m.tokenizer)
    assert m.prior.training and all(p.requires_grad for p in m.prior.parameters())  # restored


def test_discriminator_and_prior_steps_leave_the_tokenizer_unchanged(model):
    m, optim = model
    x, cond = data()
    y = m.teacher_features(x)
    x_hat, q = m.tokenizer(x)
    m.tokenizer_phase(x, x_hat, q, cond, y, optim['tokenizer'], step=0)
    tok, prior = snapshot(m.tokenizer), snapshot(m.prior)
    m.discriminator_phase(x, x_hat, optim['discriminator'])
    m.prior_phase(q.indices.detach().flatten(1), cond, y, optim['prior'])
    assert unchanged(tok, m.tokenizer) and no_grads(m.tokenizer)
    assert not unchanged(prior, m.prior)  # the prior did step


def test_full_step_updates_each_group_and_both_emas_with_one_decay(model):
    m, optim = model
    x, cond = data()
    before = {n: snapshot(getattr(m, n)) for n in ('tokenizer', 'discriminator', 'prior')}
    logs = m.train_step(dict(img=x, label=cond), optim)
    for name, state in before.items():
        assert not unchanged(state, getattr(m, name)), name
    for ema, online in ((m.tokenizer_ema, m.tokenizer), (m.prior_ema, m.prior)):
        assert ema.momentum == pytest.approx(0.1)  # 1 - ema_decay, the same for both
        assert all(torch.equal(a, b) for a, b in zip(ema.module.parameters(), online.parameters()))
    for key in ('tokenizer/loss_recon', 'tokenizer/loss_align_soft', 'discriminator/loss',
                'prior/loss_ntp', 'prior/loss_align', 'prior/cos/effnet',
                'assign/soft_entropy', 'assign/natural_top1'):
        assert key in logs, key


def test_early_exit_gives_identical_hidden_state_and_tokenizer_gradients(model):
    m, _ = model
    x, cond = data()
    y = m.teacher_features(x)
    results = []
    for early in (True, False):
        m.tokenizer.zero_grad()
        _, q = m.tokenizer(x)
        with frozen(m.prior, eval_mode=True):
            probs = m.readout(q.d)[:, :-1]  # (B, N - 1, K)
            out = m.prior.ar(probs, cond, return_hidden_at=m.prior.align_depth, early_exit=early)
            assert (out.logits is None) == early
            loss, _ = m.prior.align_loss(out.hidden, y)
            loss.backward()
        results.append((out.hidden.detach(), [p.grad.clone() for p in m.tokenizer.encoder.parameters()]))
    (h1, g1), (h2, g2) = results
    torch.testing.assert_close(h1, h2, rtol=0, atol=0)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_straight_through_readout_forward_is_the_hard_one_hot(model):
    m, _ = model
    from gear.registry import READOUTS
    st = READOUTS.build(dict(type='StraightThroughReadout', tau=0.1))
    _, q = m.tokenizer(data()[0])
    probs = st(q.d)  # (B, N, K)
    assert torch.equal(probs, F.one_hot(q.indices.flatten(1), K).to(probs.dtype))
