"""Stage 1, GEAR joint training: tokenizer, discriminator and prior (AR + projectors).

    y   = teachers(x)                 frozen, no grad: patch features on the token grid
    x^, q = tokenizer(x)              one tokenizer forward: q.z_q, q.indices, q.d, q.losses
    (1) tokenizer      prior frozen (eval, no parameter gradients, not stepped), D frozen
                       loss = L1 + perceptual + quantizer + w_gan * G(D(x^))
                              + lambda * align(proj(AR_{<=D}(softmax(-q.d / tau))), y)
    (2) discriminator  hinge(D(x), D(x^.detach()))            tokenizer untouched
    (3) prior          tokens = q.indices.detach()            tokenizer gets no gradient
                       loss = CE(AR(tokens[:, :-1], cond), tokens)
                              + lambda_ar * align(proj(AR_{<=D}(tokens)), y)
    (4) EMA(tokenizer), EMA(prior), same decay
``cond`` is the class, or with ``text_encoder`` the frozen encoder's caption embedding
(``conditioning.py``). The next-token loss never reaches the tokenizer; the soft alignment reaches only the tokenizer.
Optimizer groups: ``tokenizer``, ``discriminator``, ``prior``. Under DDP / DeepSpeed each trainable
module is called through its handle (``train_module``) in its own phase; the prior's soft branch
and D in step (1) are frozen and called directly.
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.model import ExponentialMovingAverage
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from gear.registry import DISCRIMINATORS, LOSSES, MODELS, READOUTS, TOKENIZERS
from gear.utils.frozen import frozen

from .assignment_stats import assignment_stats
from .code_usage import CodeUsageMeter
from .conditioning import build_text_encoder, condition
from .phases import (current_step, discriminator_step, logs_this_step, prefixed, prior_step,
                     reconstruction_losses, reconstruction_outputs, update_ema)
from .prior import build_prior, build_teachers, teacher_features
from .stage_model import StageModel


@MODELS.register_module()
class GEAR(StageModel):
    """The three-phase GEAR model.

    Args:
        tokenizer, discriminator, recon_loss, gan_loss, perceptual_loss, ema_decay,
        val_use_ema: as in ``TokenizerWarmup``; ``ema_decay`` also for the prior.
        prior (dict): ``Prior`` kwargs: ``ar``, ``align_loss``, ``align_depth``.
        teachers (dict): name -> ALIGN_ENCODERS config (frozen; not saved in checkpoints).
        readout (dict): READOUTS config of the tokenizer-side branch (``SoftReadout`` with tau).
        lambda_align (float): weight of the soft alignment in the tokenizer loss (lambda).
        lambda_ar (float): weight of the hard alignment in the prior loss.
        text_encoder (dict, optional): TEXT_ENCODERS config (frozen, not in checkpoints): the
            prior is conditioned on ``data['caption']`` (the AR needs ``caption_dim``).
        init_from (list[dict], optional): e.g. stage 0's ``final.pth`` with ``modules=dict(
            tokenizer='tokenizer', tokenizer_ema='tokenizer_ema', discriminator='discriminator')``.
    """
    train_module_names = ('tokenizer', 'discriminator', 'prior')
    ema_of = dict(tokenizer_ema='tokenizer', prior_ema='prior')

    def __init__(self, tokenizer: dict, discriminator: dict, prior: dict, teachers: dict,
                 recon_loss: dict, gan_loss: dict, perceptual_loss: Optional[dict] = None,
                 readout: dict = dict(type='SoftReadout', tau=0.1), lambda_align: float = 0.5,
                 lambda_ar: float = 0.5, ema_decay: float = 0.9999, val_use_ema: bool = True,
                 text_encoder: Optional[dict] = None, init_from: Optional[Sequence[dict]] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(init_from, data_preprocessor, init_cfg)
        self.tokenizer = TOKENIZERS.build(tokenizer)
        self.discriminator = DISCRIMINATORS.build(discriminator)
        self.recon_loss = LOSSES.build(recon_loss)
        self.perceptual_loss = LOSSES.build(perceptual_loss) if perceptual_loss else None
        self.gan_loss = LOSSES.build(gan_loss)
        self.tokenizer_ema = ExponentialMovingAverage(self.tokenizer, momentum=1.0 - ema_decay)
        self.code_usage = CodeUsageMeter(self.tokenizer.codebook_size)
        self.teachers = build_teachers(teachers)
        self.prior = build_prior(prior, self.teachers, self.tokenizer.codebook_size)
        self.text_encoder = build_text_encoder(text_encoder, self.prior)
        self.prior_ema = ExponentialMovingAverage(self.prior, momentum=1.0 - ema_decay)
        self.readout = READOUTS.build(readout)
        self.lambda_align, self.lambda_ar, self.val_use_ema = lambda_align, lambda_ar, val_use_ema

    # ------------------------------------------------------------------ training
    def train_step(self, data: dict, optim_wrapper: OptimWrapperDict) -> Dict[str, Tensor]:
        data = self.data_preprocessor(data, True)
        x, cond, step = data['img'], condition(data, self.text_encoder), current_step()
        y = self.teacher_features(x)  # {name: (B, N, C)}, no grad
        tokenizer = self.train_module('tokenizer')
        with optim_wrapper['tokenizer'].optim_context(tokenizer):  # bf16 autocast under AMP
            x_hat, q = tokenizer(x)  # the one tokenizer forward of the step
        logs = self.tokenizer_phase(x, x_hat, q, cond, y, optim_wrapper['tokenizer'], step)  # (1)
        if self.gan_loss.is_active(step):
            logs |= self.discriminator_phase(x, x_hat, optim_wrapper['discriminator'])       # (2)
        tokens = q.indices.detach().flatten(1)  # (B, h, w) -> (B, N): hard, no gradient
        logs |= self.prior_phase(tokens, cond, y, optim_wrapper['prior'])                    # (3)
        update_ema(self.tokenizer_ema, self.tokenizer, optim_wrapper['tokenizer'])  # (4)
        update_ema(self.prior_ema, self.prior, optim_wrapper['prior'])
        self.code_usage.update(q.indices)
        if logs_this_step():  # two log-softmaxes over (B, N, K): on logged steps only
            logs |= assignment_stats(q.d, getattr(self.readout, 'tau', 1.0))
        return logs

    def tokenizer_phase(self, x: Tensor, x_hat: Tensor, q, cond: Tensor,
                        y: Dict[str, Tensor], optim: OptimWrapper, step: int) -> Dict[str, Tensor]:
        """(1) Step the tokenizer; the prior and D only pass gradients through."""
        with frozen(self.prior, eval_mode=True), frozen(self.discriminator), \
                optim.optim_context(self.train_module('tokenizer')):
            losses = reconstruction_losses(x, x_hat, q, step, self.recon_loss,
                                           self.perceptual_loss, self.gan_loss, self.discriminator)
            probs = self.readout(q.d)  # (B, N, K) = softmax(-d / tau), differentiable in q.d
            loss_align, metrics = self.prior.align(probs, cond, y)
            losses['loss_align_soft'] = self.lambda_align * loss_align
            loss = sum(losses.values())
            optim.update_params(loss)
        return prefixed('tokenizer', losses, loss, metrics, metric_prefix='soft_')

    def discriminator_phase(self, x: Tensor, x_hat: Tensor, optim: OptimWrapper) -> Dict[str, Tensor]:
        """(2) Step D on real images vs detached reconstructions: no gradient to the tokenizer."""
        return discriminator_step(self.train_module('discriminator'), self.gan_loss, x,
                                  x_hat.detach(), optim)

    def prior_phase(self, tokens: Tensor, cond: Tensor, y: Dict[str, Tensor],
                    optim: OptimWrapper) -> Dict[str, Tensor]:
        """(3) Step AR + projectors on hard tokens (B, N), which carry no gradient."""
        return prior_step(self.train_module('prior'), tokens, cond, y, self.lambda_ar, optim)

    def teacher_features(self, x: Tensor) -> Dict[str, Tensor]:
        return teacher_features(self.teachers, x)

    # ------------------------------------------------------------------ inference
    @property
    def eval_tokenizer(self):
        return self.tokenizer_ema.module if self.val_use_ema else self.tokenizer

    def forward(self, img: Tensor, label: Optional[Tensor] = None, mode: str = 'tensor'):
        """``mode='tensor'``: reconstruction of ``img`` by the evaluation tokenizer."""
        return self.eval_tokenizer(img)[0]

    @torch.no_grad()
    def val_step(self, data: dict) -> List[dict]:
        return reconstruction_outputs(self.eval_tokenizer, self.data_preprocessor(data, False)['img'])

    test_step = val_step
