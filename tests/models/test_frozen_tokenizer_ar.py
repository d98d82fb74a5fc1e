"""Stage 2 / baseline: the tokenizer comes from an earlier stage's EMA and never changes."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from gear.registry import MODELS
from gear.utils.checkpoint import CheckpointError, save_weights

from .test_gear_invariants import TINY_GEAR, data

_opt = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2))


@pytest.fixture(scope='module')
def stage1_weights(tmp_path_factory):
    torch.manual_seed(0)
    MessageHub.get_instance('gear-stage2').update_info('iter', 0)
    gear = MODELS.build(TINY_GEAR)
    optim = build_optim_wrapper(gear, dict(constructor='ModuleOptimWrapperConstructor',
                                           tokenizer=_opt, discriminator=_opt, prior=_opt))
    x, cond = data()
    for _ in range(2):  # EMA and online weights now differ
        gear.train_step(dict(img=x, label=cond), optim)
    path = str(tmp_path_factory.mktemp('stage1') / 'final.pth')
    save_weights(gear.state_dict(), path)
    return gear, path


def stage2_cfg(path, modules=None, **kw):
    """The stage-2 model of ``path``, built and initialised as the runner does."""
    modules = modules or {'tokenizer_ema.module': 'tokenizer'}
    return dict(type='FrozenTokenizerAR', tokenizer=TINY_GEAR['tokenizer'],
                init_from=[dict(checkpoint=path, modules=modules)],
                prior=copy.deepcopy(TINY_GEAR['prior']), teachers=TINY_GEAR['teachers'],
                ema_decay=0.9, **kw)


def build(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_tokenizer_is_the_earlier_stage_ema_and_stays_frozen(stage1_weights):
    gear, path = stage1_weights
    model = build(stage2_cfg(path)).train()
    for a, b in zip(model.tokenizer.parameters(), gear.tokenizer_ema.module.parameters()):
        assert torch.equal(a, b)
    assert not model.tokenizer.training and not any(p.requires_grad for p in model.tokenizer.parameters())
    optim = build_optim_wrapper(model, dict(constructor='ModuleOptimWrapperConstructor', prior=_opt))
    before = {k: v.clone() for k, v in model.tokenizer.state_dict().items()}
    calls = []
    model.tokenizer.encoder.register_forward_pre_hook(lambda m, _: calls.append(m.training))
    for p in model.tokenizer.parameters():  # none requires grad: nothing to hook, and none may
        assert not p.requires_grad
    x, cond = data()
    # what the prior must be trained on: the stage-1 EMA tokenizer's codes, with the AR as built
    tokens = gear.tokenizer_ema.module.eval().encode(x).indices.flatten(1)  # (B, N)
    prior = copy.deepcopy(model.prior)
    with torch.no_grad():
        ntp = F.cross_entropy(prior.ar(tokens[:, :-1], cond).logits.flatten(0, 1), tokens.flatten())
    for it in range(2):
        MessageHub.get_current_instance().update_info('iter', it)
        logs = model.train_step(dict(img=x, label=cond), optim)
        if it == 0:
            torch.testing.assert_close(logs['prior/loss_ntp'], ntp, rtol=1e-6, atol=1e-7)
    assert calls == [False, False]  # encoded in eval mode, although the model is training
    assert model.training and not any(p.requires_grad for p in model.tokenizer.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.tokenizer.state_dict().items())
    assert torch.equal(model.encode(x), tokens)
    # validation: per image, the evaluation (EMA) prior's NTP and cosine, as its batch losses
    model.eval()  # as the ValLoop (no class dropout)
    out = model.val_step(dict(img=x, label=cond))
    ema = model.prior_ema.module
    with torch.no_grad():
        losses, metrics = ema(tokens, cond, model.teacher_features(x))
    assert len(out) == 2
    assert sum(o['loss_ntp'] for o in out) / 2 == pytest.approx(float(losses['loss_ntp']), rel=1e-5)
    assert sum(o['cos/effnet'] for o in out) / 2 == pytest.approx(float(metrics['cos/effnet']),
                                                                  rel=1e-5)
    assert float(losses['loss_align']) == pytest.approx(-float(metrics['cos/effnet']), rel=1e-5)
    with torch.no_grad():  # the EMA prior, not the online one, after two steps
        online, _ = model.prior(tokens, cond, model.teacher_features(x))
    assert float(online['loss_ntp']) != pytest.approx(float(losses['loss_ntp']), rel=1e-6)


def test_ar_init_continues_the_stage1_prior(stage1_weights):
    gear, path = stage1_weights
    fresh = build(stage2_cfg(path))
    init = build(stage2_cfg(path, modules={'tokenizer_ema.module': 'tokenizer', 'prior': 'prior',
                                           'prior_ema': 'prior_ema'}))
    for a, b, c in zip(init.prior.parameters(), gear.prior.parameters(), fresh.prior.parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, c) for a, c in zip(init.prior.parameters(), fresh.prior.parameters()))


def test_missing_prefix_and_missing_file_name_the_problem(stage1_weights, tmp_path):
    _, path = stage1_weights
    with pytest.raises(CheckpointError, match=r"init_from\[0\].*no weights under 'vq_ema'.*tokenizer_ema"):
        build(stage2_cfg(path, modules={'vq_ema': 'tokenizer'}))
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(CheckpointError, match='not found: .*nope.pth'):
        build(stage2_cfg(missing))


def test_training_without_a_tokenizer_source_is_an_error(stage1_weights):
    _, path = stage1_weights
    model = MODELS.build(stage2_cfg(path, modules=dict(prior='prior')))
    with pytest.raises(ValueError, match='init_from must load the frozen tokenizer'):
        model.init_weights()
