"""Adversarial losses for the tokenizer and its discriminator.

Functional forms (all take raw discriminator logits of any shape, e.g. PatchGAN's (B, 1, h, w)):

- ``hinge_d_loss``            0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake)))
- ``non_saturating_d_loss``   0.5 * (mean(softplus(-real)) + mean(softplus(fake)))
- ``hinge_g_loss``            -mean(fake)
- ``non_saturating_g_loss``   mean(softplus(-fake))

``GANLoss`` bundles one D/G pair with the generator weight and the step at which the adversarial
term switches on (``disc_start``).
"""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn

from gear.registry import LOSSES
from .precision import fp32_region


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Hinge discriminator loss: 0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake)))."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def non_saturating_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Logistic (non-saturating) discriminator loss: 0.5 * (mean(sp(-real)) + mean(sp(fake)))."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def hinge_g_loss(logits_fake: Tensor) -> Tensor:
    """Hinge generator loss: -mean(fake)."""
    return -logits_fake.mean()


def non_saturating_g_loss(logits_fake: Tensor) -> Tensor:
    """Non-saturating generator loss: mean(softplus(-fake)) = -mean(log sigmoid(fake))."""
    return F.softplus(-logits_fake).mean()


_LOSS_FNS = {
    'hinge': (hinge_d_loss, hinge_g_loss),
    'non_saturating': (non_saturating_d_loss, non_saturating_g_loss),
}


@LOSSES.register_module()
class GANLoss(nn.Module):
    """Discriminator and generator terms of one adversarial loss type.

    The generator term is ``loss_weight * g_loss`` from step ``disc_start`` on and ``0 * g_loss``
    before it (a zero tensor on the logits' device, still attached to the graph). The
    discriminator term is returned unweighted; pass ``step`` to zero it before ``disc_start`` too,
    or use ``is_active(step)`` to skip the discriminator update altogether.

    Args:
        loss_type: ``'hinge'`` or ``'non_saturating'``.
        loss_weight: weight of the generator term once active.
        disc_start: first training step (0-based) at which the adversarial term is on.
        fp32: take the logits to float32 (autocast off) before the loss (default True: the
            means over PatchGAN maps are cheap and bf16 rounds them to ~3 digits).
    """

    def __init__(self, loss_type: str = 'hinge', loss_weight: float = 0.1, disc_start: int = 0,
                 fp32: bool = True):
        super().__init__()
        if loss_type not in _LOSS_FNS:
            raise ValueError(f'GANLoss: unknown loss_type {loss_type!r}; '
                             f'allowed: {sorted(_LOSS_FNS)}')
        self.loss_type = loss_type
        self.loss_weight = float(loss_weight)
        self.disc_start = int(disc_start)
        self.fp32 = bool(fp32)
        self._d_fn, self._g_fn = _LOSS_FNS[loss_type]

    def is_active(self, step: int) -> bool:
        """Whether the adversarial term is on at ``step``."""
        return int(step) >= self.disc_start

    def generator_weight(self, step: int) -> float:
        """``loss_weight`` once active, else 0."""
        return self.loss_weight if self.is_active(step) else 0.0

    def discriminator_loss(self, logits_real: Tensor, logits_fake: Tensor,
                           step: Optional[int] = None) -> Tensor:
        """logits of real images and of (detached) reconstructions -> scalar D loss."""
        with fp32_region(logits_real, logits_fake, enabled=self.fp32) as (real, fake):
            loss = self._d_fn(real, fake)
        if step is not None and not self.is_active(step):
            loss = loss * 0.0
        return loss

    def generator_loss(self, logits_fake: Tensor, step: int) -> Tensor:
        """logits of reconstructions (not detached) -> weighted scalar G loss."""
        with fp32_region(logits_fake, enabled=self.fp32) as (fake,):
            return self.generator_weight(step) * self._g_fn(fake)

    def forward(self, logits_fake: Tensor, step: int) -> Tensor:
        """Alias of ``generator_loss``."""
        return self.generator_loss(logits_fake, step)

    def extra_repr(self) -> str:
        return (f'loss_type={self.loss_type!r}, loss_weight={self.loss_weight}, '
                f'disc_start={self.disc_start}, fp32={self.fp32}')
