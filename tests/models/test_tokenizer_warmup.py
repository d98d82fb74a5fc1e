"""Stage 0 on a tiny model: each phase steps only its own group; EMA follows the tokenizer."""
import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapperDict, build_optim_wrapper

from gear.registry import MODELS

TINY = dict(
    type='TokenizerWarmup',
    tokenizer=dict(type='VQTokenizer', ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=8,
                   quantizer=dict(type='VectorQuantizer', codebook_size=16, embed_dim=4)),
    discriminator=dict(type='PatchGANDiscriminator', base_channels=8, num_layers=2),
    recon_loss=dict(type='L1Loss'),
    gan_loss=dict(type='GANLoss', loss_type='hinge', loss_weight=0.1, disc_start=0),
    ema_decay=0.9)
_adam = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2))
OPTIM = dict(constructor='ModuleOptimWrapperConstructor', tokenizer=_adam, discriminator=_adam)


def build(**overrides):
    torch.manual_seed(0)
    MessageHub.get_instance('gear-test').update_info('iter', 0)
    model = MODELS.build(dict(TINY, **overrides))
    return model, build_optim_wrapper(model, copy.deepcopy(OPTIM))


def params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before, module):
    return [k for k, v in module.state_dict().items() if not torch.equal(before[k], v)]


def batch(n=4):
    g = torch.Generator().manual_seed(1)
    return dict(img=torch.rand(n, 3, 16, 16, generator=g) * 2 - 1, label=torch.zeros(n, dtype=torch.long))


def test_optimizer_groups_are_exactly_the_modules():
    model, optim = build()
    assert isinstance(optim, OptimWrapperDict) and set(optim.keys()) == {'tokenizer', 'discriminator'}
    for name in ('tokenizer', 'discriminator'):
        in_group = {id(p) for g in optim[name].optimizer.param_groups for p in g['params']}
        assert in_group == {id(p) for p in getattr(model, name).parameters()}


def test_tokenizer_phase_leaves_the_discriminator_untouched():
    model, optim = build()
    x = batch()['img']
    d_before, t_before = params(model.discriminator), params(model.tokenizer)
    x_hat, q = model.tokenizer(x)
    logs = model.tokenizer_phase(x, x_hat, q, optim['tokenizer'], step=0)
    assert 'tokenizer/loss_gan' in logs  # the GAN term was in the loss...
    assert changed(d_before, model.discriminator) == []  # ...yet D did not move
    assert all(p.grad is None or not p.grad.any() for p in model.discriminator.parameters())
    assert all(p.requires_grad for p in model.discriminator.parameters())  # toggled back
    assert changed(t_before, model.tokenizer)


def test_discriminator_phase_leaves_the_tokenizer_untouched():
    model, optim = build()
    x = batch()['img']
    x_hat, _ = model.tokenizer(x)
    t_before, d_before = params(model.tokenizer), params(model.discriminator)
    model.discriminator_phase(x, x_hat, optim['discriminator'])
    assert changed(t_before, model.tokenizer) == []
    assert all(p.grad is None for p in model.tokenizer.parameters())
    assert changed(d_before, model.discriminator)


def test_before_disc_start_no_gan_term_and_no_discriminator_step():
    model, optim = build(gan_loss=dict(type='GANLoss', loss_weight=0.1, disc_start=100))
    d_before = params(model.discriminator)
    logs = model.train_step(batch(), optim)
    assert 'tokenizer/loss_gan' not in logs and 'discriminator/loss' not in logs
    assert changed(d_before, model.discriminator) == []


def test_train_step_updates_ema_with_the_configured_decay():
    model, optim = build()
    model.train_step(batch(), optim)  # first EMA update copies the weights
    ema = model.tokenizer_ema.module
    for p_ema, p in zip(ema.parameters(), model.tokenizer.parameters()):
        assert torch.equal(p_ema, p)
    before = [p.detach().clone() for p in ema.parameters()]
    model.train_step(batch(), optim)
    for b, p_ema, p in zip(before, ema.parameters(), model.tokenizer.parameters()):
        torch.testing.assert_close(p_ema, 0.9 * b + 0.1 * p)
    assert model.code_usage.counts.sum() == 2 * 4 * 8 * 8  # two batches of 4 images, 8x8 tokens


def test_val_step_uses_the_ema_tokenizer():
    model, optim = build()
    model.train_step(batch(), optim)
    model.train_step(batch(), optim)  # now EMA != online weights
    out = model.val_step(batch(2))
    assert len(out) == 2 and set(out[0]) == {'gt_img', 'pred_img', 'indices'}
    with torch.no_grad():
        expected, _ = model.tokenizer_ema.module(batch(2)['img'])
        online, _ = model.tokenizer(batch(2)['img'])
    torch.testing.assert_close(out[0]['pred_img'], expected[0])
    assert not torch.allclose(out[0]['pred_img'], online[0])


def test_optimizer_constructor_errors_name_the_group():
    model, _ = build()
    with pytest.raises(KeyError, match=r'optim_wrapper\.prior\.modules: .* no sub-module \'ar\''):
        build_optim_wrapper(model, dict(OPTIM, prior=dict(_adam, modules=['ar'])))
    with pytest.raises(ValueError, match='in two optimizer groups'):
        build_optim_wrapper(model, dict(OPTIM, again=dict(_adam, modules='tokenizer')))
    with pytest.raises(ValueError, match='in no optimizer group: .*discriminator'):
        build_optim_wrapper(model, dict(constructor='ModuleOptimWrapperConstructor', tokenizer=_adam))
