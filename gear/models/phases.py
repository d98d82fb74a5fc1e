"""Pieces of the optimizer phases that several stage models compose (pure functions).

A stage model's phase method holds its own ``frozen(...)`` blocks and ``.detach()`` points;
the functions here only compute losses or take a step on what they are given:
- ``reconstruction_losses``: L1 + perceptual + quantizer terms + the GAN generator term;
- ``discriminator_step``: hinge (or non-saturating) loss of D on real vs given fakes, stepped;
- ``prior_step``: next-token CE + weighted hard-branch alignment of the prior, stepped;
- ``update_ema``: one EMA update on the steps the module's optimizer stepped (ZeRO-3 parameters
  gathered first);
- ``reconstruction_outputs``: the validation records of a tokenizer.
"""
from typing import Dict, List, Optional

from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from gear.utils.distributed import gathered


LOG_INTERVAL_INFO = 'log_interval'  # message-hub info: steps per log window (LogSyncHook)


def current_step() -> int:
    """The global training step (mmengine's message hub keeps it, also across resume)."""
    return int(MessageHub.get_current_instance().get_info('iter', 0))


def logs_this_step() -> bool:
    """Whether the step being trained is one the logger logs (``(iter + 1) % interval == 0``);
    True when no interval is known (a model used outside the runner). For diagnostics too
    costly to compute on every step (``assignment_stats``)."""
    hub = MessageHub.get_current_instance()
    interval = hub.get_info(LOG_INTERVAL_INFO)
    return not interval or (int(hub.get_info('iter', 0)) + 1) % int(interval) == 0


def prefixed(phase: str, losses: Dict[str, Tensor], total: Tensor,
             metrics: Optional[Dict[str, Tensor]] = None, metric_prefix: str = '') -> Dict[str, Tensor]:
    """Detached log entries: ``{phase}/{term}`` per loss term, ``{phase}/loss`` for the total and
    ``{phase}/{metric_prefix}{name}`` per metric (diagnostics never enter a total)."""
    logs = {f'{phase}/{k}': v.detach() for k, v in losses.items()}
    logs[f'{phase}/loss'] = total.detach()
    logs.update({f'{phase}/{metric_prefix}{k}': v for k, v in (metrics or {}).items()})
    return logs


def reconstruction_losses(x: Tensor, x_hat: Tensor, q, step: int, recon_loss: nn.Module,
                          perceptual_loss: Optional[nn.Module], gan_loss: nn.Module,
                          discriminator: nn.Module) -> Dict[str, Tensor]:
    """The tokenizer's own terms; ``discriminator`` must be frozen by the caller (gradients
    pass through it into ``x_hat``). x, x_hat: (B, 3, H, W); q: the ``QuantizerOutput``."""
    losses = dict(loss_recon=recon_loss(x_hat, x))
    if perceptual_loss is not None:
        losses['loss_perceptual'] = perceptual_loss(x_hat, x)
    losses.update(q.losses)  # codebook / commit / entropy terms (training mode only)
    if gan_loss.is_active(step):
        losses['loss_gan'] = gan_loss.generator_loss(discriminator(x_hat), step)
    return losses


def discriminator_step(discriminator: nn.Module, gan_loss: nn.Module, x: Tensor, fake: Tensor,
                       optim: OptimWrapper) -> Dict[str, Tensor]:
    """Step D on real ``x`` vs ``fake`` (the caller detaches it). Returns the log dict."""
    with optim.optim_context(discriminator):
        logits_real = discriminator(x)
        logits_fake = discriminator(fake)
        loss = gan_loss.discriminator_loss(logits_real, logits_fake)
    optim.update_params(loss)
    return {'discriminator/loss': loss.detach(),
            'discriminator/logits_real': logits_real.detach().mean(),
            'discriminator/logits_fake': logits_fake.detach().mean()}


def prior_step(prior: nn.Module, tokens: Tensor, cond: Tensor, targets: Dict[str, Tensor],
               lambda_ar: float, optim: OptimWrapper) -> Dict[str, Tensor]:
    """Step AR + projectors on hard tokens (B, N) long: CE + lambda_ar * alignment.
    ``prior`` is the ``Prior`` or its DDP / DeepSpeed handle (``forward = ntp_and_align``)."""
    with optim.optim_context(prior):
        losses, metrics = prior(tokens, cond, targets)
        losses['loss_align'] = lambda_ar * losses['loss_align']
        loss = sum(losses.values())
        optim.update_params(loss)
    return prefixed('prior', losses, loss, metrics)


def update_ema(ema: nn.Module, module: nn.Module, optim: Optional[OptimWrapper] = None) -> None:
    """One EMA step of ``ema`` (an mmengine ``ExponentialMovingAverage``) towards ``module``,
    if ``optim`` (the module's optimizer wrapper) stepped its parameters in this iteration:
    under gradient accumulation (``accumulative_counts=N``) once per N iterations, as the
    parameters change, not on every micro-step."""
    if optim is not None and not optim.should_update():
        return
    with gathered(module):  # whole parameters under ZeRO-3
        ema.update_parameters(module)


def reconstruction_outputs(tokenizer: nn.Module, x: Tensor) -> List[dict]:
    """Per-image validation records of ``tokenizer`` on images x (B, 3, H, W)."""
    x_hat, q = tokenizer(x)
    return [dict(gt_img=g.cpu(), pred_img=p.cpu(), indices=i.cpu())
            for g, p, i in zip(x, x_hat, q.indices)]

