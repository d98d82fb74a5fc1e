"""Stage 0: tokenizer warm-up (reconstruction + GAN), the model every later stage starts from.

Gradient routing of one iteration (``train_step``; each phase is its own method):
    x^, q = tokenizer(x)                                   one tokenizer forward
    (1) tokenizer      loss = L1(x^, x) + perceptual(x^, x) + q.losses + w_gan * G(D(x^))
                       D frozen (``frozen``: requires_grad False, buffers restored): gradients
                       pass through D into x^; D gets none and does not change.
    (2) discriminator  hinge(D(x), D(x^.detach())); the tokenizer gets no gradient; skipped
                       before ``gan_loss.disc_start``.
    (3) EMA(tokenizer) after the tokenizer step.
Optimizer groups: ``tokenizer`` and ``discriminator``. Trainable modules are called through
``train_module(name)`` (their DDP / DeepSpeed handle); a frozen one is called directly.
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.model import ExponentialMovingAverage
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from gear.registry import DISCRIMINATORS, LOSSES, MODELS, TOKENIZERS
from gear.utils.frozen import frozen

from .code_usage import CodeUsageMeter
from .phases import (current_step, discriminator_step, prefixed, reconstruction_losses,
                     reconstruction_outputs, update_ema)
from .stage_model import StageModel


@MODELS.register_module()
class TokenizerWarmup(StageModel):
    """Tokenizer + discriminator, trained for reconstruction with an adversarial term.

    Args:
        tokenizer (dict): TOKENIZERS config, e.g. ``dict(type='VQTokenizer', ...)``.
        discriminator (dict): DISCRIMINATORS config, e.g. ``dict(type='PatchGANDiscriminator')``.
        recon_loss (dict): LOSSES config of the pixel loss (``L1Loss`` or ``MSELoss``).
        gan_loss (dict): LOSSES config of ``GANLoss`` (type, weight, disc_start).
        perceptual_loss (dict, optional): LOSSES config (``LPIPS`` or the offline ``STLPIPS``).
        ema_decay (float): decay of the tokenizer EMA (0.9999 in the reference recipe).
        val_use_ema (bool): validate the EMA tokenizer (default) or the raw one.
        init_from (list[dict], optional): weights to start from, e.g. a released LlamaGen VQ:
            ``[dict(checkpoint='vq_ds16_c2i.pt', modules=dict(tokenizer='tokenizer'))]``
            (``gear.models.init_from``; the EMA starts equal to the loaded tokenizer).
    """
    train_module_names = ('tokenizer', 'discriminator')
    ema_of = dict(tokenizer_ema='tokenizer')

    def __init__(self, tokenizer: dict, discriminator: dict, recon_loss: dict, gan_loss: dict,
                 perceptual_loss: Optional[dict] = None, ema_decay: float = 0.9999,
                 val_use_ema: bool = True, init_from: Optional[Sequence[dict]] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(init_from, data_preprocessor, init_cfg)
        self.tokenizer = TOKENIZERS.build(tokenizer)
        self.discriminator = DISCRIMINATORS.build(discriminator)
        self.recon_loss = LOSSES.build(recon_loss)
        self.perceptual_loss = LOSSES.build(perceptual_loss) if perceptual_loss else None
        self.gan_loss = LOSSES.build(gan_loss)
        self.tokenizer_ema = ExponentialMovingAverage(self.tokenizer, momentum=1.0 - ema_decay)
        self.code_usage = CodeUsageMeter(self.tokenizer.codebook_size)
        self.val_use_ema = val_use_ema

    # ------------------------------------------------------------------ training
    def train_step(self, data: dict, optim_wrapper: OptimWrapperDict) -> Dict[str, Tensor]:
        data = self.data_preprocessor(data, True)
        x, step = data['img'], current_step()
        tokenizer = self.train_module('tokenizer')
        with optim_wrapper['tokenizer'].optim_context(tokenizer):  # bf16 autocast under AMP
            x_hat, q = tokenizer(x)  # the one tokenizer forward of the step
        logs = self.tokenizer_phase(x, x_hat, q, optim_wrapper['tokenizer'], step)       # (1)
        if self.gan_loss.is_active(step):
            logs |= self.discriminator_phase(x, x_hat, optim_wrapper['discriminator'])   # (2)
        update_ema(self.tokenizer_ema, self.tokenizer, optim_wrapper['tokenizer'])  # (3)
        self.code_usage.update(q.indices)
        return logs

    def tokenizer_phase(self, x: Tensor, x_hat: Tensor, q, optim: OptimWrapper,
                        step: int) -> Dict[str, Tensor]:
        """(1) Step the tokenizer; D only passes gradients through."""
        with frozen(self.discriminator), optim.optim_context(self.train_module('tokenizer')):
            losses = reconstruction_losses(x, x_hat, q, step, self.recon_loss,
                                           self.perceptual_loss, self.gan_loss, self.discriminator)
            loss = sum(losses.values())
            optim.update_params(loss)
        return prefixed('tokenizer', losses, loss)

    def discriminator_phase(self, x: Tensor, x_hat: Tensor, optim: OptimWrapper) -> Dict[str, Tensor]:
        """(2) Step D on real images vs detached reconstructions: no gradient to the tokenizer."""
        return discriminator_step(self.train_module('discriminator'), self.gan_loss, x,
                                  x_hat.detach(), optim)

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
