"""Reconstruction and adversarial losses against values computed by hand."""
import pytest
import torch

from gear.models.losses import (GANLoss, L1Loss, MSELoss, hinge_d_loss, hinge_g_loss,
                                non_saturating_d_loss, non_saturating_g_loss)
from gear.registry import LOSSES

PRED = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
TARGET = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
# |diff| = 0.5, 2, 1, 0 -> mean 0.875; diff^2 = 0.25, 4, 1, 0 -> mean 1.3125
REAL = torch.tensor([2.0, 0.5, -1.0, 0.0])
FAKE = torch.tensor([-2.0, 0.5, 1.0, 0.0])


def test_l1_and_mse_by_hand():
    assert L1Loss()(PRED, TARGET).item() == pytest.approx(0.875)
    assert L1Loss(loss_weight=2.0)(PRED, TARGET).item() == pytest.approx(1.75)
    assert MSELoss()(PRED, TARGET).item() == pytest.approx(1.3125)
    assert MSELoss(loss_weight=0.5)(PRED, TARGET).item() == pytest.approx(0.65625)


def test_built_from_registry():
    loss = LOSSES.build(dict(type='L1Loss', loss_weight=3.0))
    assert isinstance(loss, L1Loss) and loss.loss_weight == 3.0
    gan = LOSSES.build(dict(type='GANLoss', loss_type='non_saturating', disc_start=5))
    assert isinstance(gan, GANLoss) and gan.disc_start == 5


def test_hinge_losses_by_hand():
    # relu(1 - real) = 0, 0.5, 2, 1 -> mean 0.875; relu(1 + fake) = 0, 1.5, 2, 1 -> mean 1.125
    assert hinge_d_loss(REAL, FAKE).item() == pytest.approx(0.5 * (0.875 + 1.125))
    assert hinge_g_loss(FAKE).item() == pytest.approx(-(-2.0 + 0.5 + 1.0 + 0.0) / 4)


def test_non_saturating_losses_by_hand():
    import math
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731  softplus
    real_term = sum(sp(-v) for v in REAL.tolist()) / 4
    fake_term = sum(sp(v) for v in FAKE.tolist()) / 4
    assert non_saturating_d_loss(REAL, FAKE).item() == pytest.approx(0.5 * (real_term + fake_term))
    g = sum(sp(-v) for v in FAKE.tolist()) / 4
    assert non_saturating_g_loss(FAKE).item() == pytest.approx(g)
    # softplus(-x) = -log(sigmoid(x))
    assert g == pytest.approx(-torch.log(torch.sigmoid(FAKE)).mean().item())


def test_patch_shaped_logits():
    real, fake = REAL.view(1, 1, 2, 2), FAKE.view(1, 1, 2, 2)
    assert hinge_d_loss(real, fake).item() == pytest.approx(hinge_d_loss(REAL, FAKE).item())


@pytest.mark.parametrize('loss_type,g_fn,d_fn', [
    ('hinge', hinge_g_loss, hinge_d_loss),
    ('non_saturating', non_saturating_g_loss, non_saturating_d_loss)])
def test_gan_loss_disc_start(loss_type, g_fn, d_fn):
    gan = GANLoss(loss_type=loss_type, loss_weight=0.1, disc_start=10)
    fake = FAKE.clone().requires_grad_(True)
    before = gan.generator_loss(fake, step=9)
    assert isinstance(before, torch.Tensor) and before.item() == 0.0
    assert before.device == fake.device and before.requires_grad
    before.backward()
    assert torch.all(fake.grad == 0)
    after = gan.generator_loss(FAKE, step=10)
    assert after.item() == pytest.approx(0.1 * g_fn(FAKE).item())
    assert not gan.is_active(9) and gan.is_active(10) and gan.is_active(11)
    assert gan.discriminator_loss(REAL, FAKE).item() == pytest.approx(d_fn(REAL, FAKE).item())
    assert gan.discriminator_loss(REAL, FAKE, step=3).item() == 0.0
    assert gan.discriminator_loss(REAL, FAKE, step=10).item() == pytest.approx(
        d_fn(REAL, FAKE).item())


def test_gan_loss_default_active_from_step_zero():
    gan = GANLoss()
    assert gan.loss_type == 'hinge' and gan.loss_weight == 0.1 and gan.disc_start == 0
    assert gan.generator_loss(FAKE, step=0).item() == pytest.approx(-0.1 * FAKE.mean().item())


def test_gan_loss_unknown_type():
    with pytest.raises(ValueError, match=r"'wgan'.*hinge.*non_saturating"):
        GANLoss(loss_type='wgan')
