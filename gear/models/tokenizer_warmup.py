"""Stage 0: tokenizer warm-up (reconstruction + GAN), the model every later stage starts from.

Gradient routing of one iteration (each phase is its own method below):
    x^, q = tokenizer(x)                                   one tokenizer forward
    (1) tokenizer      loss = L1(x^, x) + perceptual(x^, x) + q.losses + w_gan * G(D(x^))
                       discriminator frozen (``frozen``: requires_grad False, buffers restored):
                       gradients pass through D into x^; D gets none and does not change.
    (2) discriminator  hinge(D(x), D(x^.detach())); x^ is detached, so the tokenizer gets no
                       gradient; skipped before ``gan_loss.disc_start``.
    (3) EMA(tokenizer) after the tokenizer step.
Optimizer groups: ``tokenizer`` and ``discriminator``.

Multi-process training calls each trainable module through ``train_module(name)``: the DDP or
DeepSpeed handle a distributed wrapper installed (``gear.engine``), else the module itself. A
module frozen in a phase (D in step 1) is always called directly, never through its handle.
"""
import contextlib
from typing import Dict, List, Optional

import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseModel, ExponentialMovingAverage
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor, nn

from gear.models.code_usage import CodeUsageMeter
from gear.registry import DISCRIMINATORS, LOSSES, MODELS, TOKENIZERS
from gear.utils.frozen import frozen


def prefixed(phase: str, losses: Dict[str, Tensor], total: Tensor) -> Dict[str, Tensor]:
    """Detached log entries ``{phase}/{name}`` for each term and ``{phase}/loss`` for the total."""
    logs = {f'{phase}/{k}': v.detach() for k, v in losses.items()}
    logs[f'{phase}/loss'] = total.detach()
    return logs


def current_step() -> int:
    """The global training step (mmengine's message hub keeps it, also across resume)."""
    return int(MessageHub.get_current_instance().get_info('iter', 0))


def gathered(module: nn.Module, modifier_rank: Optional[int] = None):
    """Context in which ZeRO-3-partitioned parameters of ``module`` are whole (collective: every
    rank must enter it); a no-op for ordinary parameters. With ``modifier_rank``, that rank's
    in-place changes are kept (re-partitioned) on exit."""
    params = [p for p in module.parameters() if hasattr(p, 'ds_id')]
    if not params:
        return contextlib.nullcontext()
    import deepspeed
    return deepspeed.zero.GatheredParameters(params, modifier_rank=modifier_rank)


class TrainModules:
    """Handles through which the optimizer phases call their trainable modules.

    A distributed wrapper calls ``set_train_modules({name: handle})``; the handles are kept out
    of the module tree (``state_dict``, ``parameters()`` and EMA key names are unchanged).
    """
    train_module_names = ()  # attributes a phase calls through ``train_module``

    def set_train_modules(self, handles: Dict[str, nn.Module]) -> None:
        unknown = set(handles) - set(self.train_module_names)
        if unknown:
            raise KeyError(f'{type(self).__name__} has no trainable module(s) {sorted(unknown)}; '
                           f'known: {list(self.train_module_names)}')
        self.__dict__['_train_handles'] = dict(handles)  # plain attribute: not a submodule

    def train_module(self, name: str) -> nn.Module:
        """The DDP / DeepSpeed handle of ``name`` when one is installed, else the module."""
        handles = self.__dict__.get('_train_handles', {})
        return handles[name] if name in handles else getattr(self, name)


@MODELS.register_module()
class TokenizerWarmup(TrainModules, BaseModel):
    """Tokenizer + discriminator, trained for reconstruction with an adversarial term.

    Args:
        tokenizer (dict): TOKENIZERS config, e.g. ``dict(type='VQTokenizer', ...)``.
        discriminator (dict): DISCRIMINATORS config, e.g. ``dict(type='PatchGANDiscriminator')``.
        recon_loss (dict): LOSSES config of the pixel loss (``L1Loss`` or ``MSELoss``).
        perceptual_loss (dict, optional): LOSSES config (``LPIPS`` or the offline ``STLPIPS``).
        gan_loss (dict): LOSSES config of ``GANLoss`` (type, weight, disc_start).
        ema_decay (float): decay of the tokenizer EMA (0.9999 in the reference recipe).
        tokenizer_init (str, optional): weights to start from (a gear weights file or a released
            LlamaGen / GEAR tokenizer checkpoint; converted on load).
        val_use_ema (bool): validate the EMA tokenizer (default) or the raw one.
    """
    train_module_names = ('tokenizer', 'discriminator')

    def __init__(self, tokenizer: dict, discriminator: dict, recon_loss: dict, gan_loss: dict,
                 perceptual_loss: Optional[dict] = None, ema_decay: float = 0.9999,
                 tokenizer_init: Optional[str] = None, val_use_ema: bool = True,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.tokenizer = TOKENIZERS.build(tokenizer)
        if tokenizer_init is not None:
            from gear.apis.weights import load_tokenizer_weights
            load_tokenizer_weights(self.tokenizer, tokenizer_init)
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
        log_vars = self.tokenizer_phase(x, x_hat, q, optim_wrapper['tokenizer'], step)
        if self.gan_loss.is_active(step):
            log_vars.update(self.discriminator_phase(x, x_hat, optim_wrapper['discriminator']))
        self.update_tokenizer_ema()
        self.code_usage.update(q.indices)
        return log_vars

    def update_tokenizer_ema(self) -> None:
        with gathered(self.tokenizer):
            self.tokenizer_ema.update_parameters(self.tokenizer)

    def reconstruction_losses(self, x: Tensor, x_hat: Tensor, q, step: int) -> Dict[str, Tensor]:
        """L1 + perceptual + quantizer losses + the GAN generator term (once it is active)."""
        losses = dict(loss_recon=self.recon_loss(x_hat, x))
        if self.perceptual_loss is not None:
            losses['loss_perceptual'] = self.perceptual_loss(x_hat, x)
        losses.update(q.losses)
        if self.gan_loss.is_active(step):
            losses['loss_gan'] = self.gan_loss.generator_loss(self.discriminator(x_hat), step)
        return losses

    def tokenizer_phase(self, x: Tensor, x_hat: Tensor, q, optim: OptimWrapper,
                        step: int) -> Dict[str, Tensor]:
        """(1) Step the tokenizer; the discriminator only passes gradients through."""
        with frozen(self.discriminator), optim.optim_context(self.train_module('tokenizer')):
            losses = self.reconstruction_losses(x, x_hat, q, step)
            loss = sum(losses.values())
            optim.update_params(loss)
        return prefixed('tokenizer', losses, loss)

    def discriminator_phase(self, x: Tensor, x_hat: Tensor, optim: OptimWrapper) -> Dict[str, Tensor]:
        """(2) Step the discriminator on real vs detached reconstructions."""
        discriminator = self.train_module('discriminator')
        with optim.optim_context(discriminator):
            logits_real = discriminator(x)
            logits_fake = discriminator(x_hat.detach())
            loss = self.gan_loss.discriminator_loss(logits_real, logits_fake)
        optim.update_params(loss)
        return {'discriminator/loss': loss.detach(),
                'discriminator/logits_real': logits_real.detach().mean(),
                'discriminator/logits_fake': logits_fake.detach().mean()}

    # ------------------------------------------------------------------ inference
    @property
    def eval_tokenizer(self):
        return self.tokenizer_ema.module if self.val_use_ema else self.tokenizer

    def forward(self, img: Tensor, label: Optional[Tensor] = None, mode: str = 'tensor'):
        """``mode='tensor'``: reconstruction of ``img`` by the evaluation tokenizer."""
        x_hat, _ = self.eval_tokenizer(img)
        return x_hat

    @torch.no_grad()
    def val_step(self, data: dict) -> List[dict]:
        data = self.data_preprocessor(data, False)
        x_hat, q = self.eval_tokenizer(data['img'])
        return [dict(gt_img=g.cpu(), pred_img=p.cpu(), indices=i.cpu())
                for g, p, i in zip(data['img'], x_hat, q.indices)]

    test_step = val_step
