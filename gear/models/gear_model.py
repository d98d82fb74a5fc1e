"""Stage 1, GEAR joint training: tokenizer, discriminator and prior (AR + projectors).

    y   = teachers(x)                 frozen, no grad: patch features on the token grid
    x^, q = tokenizer(x)              one tokenizer forward: q.z_q, q.indices, q.d, q.losses
    (1) tokenizer      prior frozen (eval, no parameter gradients, not stepped), D frozen
                       loss = L1 + perceptual + quantizer + w_gan * G(D(x^))
                              + lambda * align(proj(AR_{<=D}(softmax(-q.d / tau))), y)
    (2) discriminator  hinge(D(x), D(x^.detach()))            tokenizer untouched
    (3) prior          tokens = q.indices.detach()            tokenizer gets no gradient
                       loss = CE(AR(tokens[:, :-1], class), tokens)
                              + lambda_ar * align(proj(AR_{<=D}(tokens)), y)
    (4) EMA(tokenizer), EMA(prior), same decay
The next-token loss never reaches the tokenizer; the soft alignment reaches only the tokenizer.
Optimizer groups: ``tokenizer``, ``discriminator``, ``prior``. Under DDP / DeepSpeed each trainable
module is called through its handle (``train_module``) in its own phase; the prior's soft branch
and D in step (1) are frozen and called directly.
"""
from typing import Dict, Optional, Tuple

from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from gear.registry import MODELS, READOUTS
from gear.utils.frozen import frozen

from .assignment_stats import assignment_stats
from .prior import PriorPhaseMixin
from .tokenizer_warmup import TokenizerWarmup, current_step, prefixed


@MODELS.register_module()
class GEAR(PriorPhaseMixin, TokenizerWarmup):
    """The three-phase GEAR model.

    Args:
        tokenizer, discriminator, recon_loss, gan_loss, perceptual_loss, ema_decay,
        tokenizer_init, val_use_ema: as in ``TokenizerWarmup``.
        prior (dict): ``Prior`` kwargs: ``ar``, ``align_loss``, ``align_depth``.
        teachers (dict): name -> ALIGN_ENCODERS config (frozen; not saved in checkpoints).
        readout (dict): READOUTS config of the tokenizer-side branch (``SoftReadout`` with tau).
        lambda_align (float): weight of the soft alignment in the tokenizer loss (lambda).
        lambda_ar (float): weight of the hard alignment in the prior loss.
        init_from (dict, optional): ``dict(checkpoint=PATH, modules={src_prefix: attribute})``,
            e.g. the stage-0 ``final.pth`` with tokenizer, tokenizer_ema and discriminator.
    """
    train_module_names = ('tokenizer', 'discriminator', 'prior')

    def __init__(self, tokenizer: dict, discriminator: dict, prior: dict, teachers: dict,
                 recon_loss: dict, gan_loss: dict, perceptual_loss: Optional[dict] = None,
                 readout: dict = dict(type='SoftReadout', tau=0.1), lambda_align: float = 0.5,
                 lambda_ar: float = 0.5, ema_decay: float = 0.9999,
                 tokenizer_init: Optional[str] = None, init_from: Optional[dict] = None,
                 val_use_ema: bool = True, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(tokenizer, discriminator, recon_loss, gan_loss, perceptual_loss,
                         ema_decay, tokenizer_init, val_use_ema, data_preprocessor, init_cfg)
        self.build_prior(prior, teachers, self.tokenizer.codebook_size, ema_decay)
        self.readout = READOUTS.build(readout)
        self.lambda_align, self.lambda_ar = lambda_align, lambda_ar
        if init_from is not None:
            from gear.apis.weights import load_submodules
            load_submodules(self, init_from['checkpoint'], init_from['modules'])

    def train_step(self, data: dict, optim_wrapper: OptimWrapperDict) -> Dict[str, Tensor]:
        data = self.data_preprocessor(data, True)
        x, cond, step = data['img'], data['label'], current_step()
        y = self.teacher_features(x)
        tokenizer = self.train_module('tokenizer')
        with optim_wrapper['tokenizer'].optim_context(tokenizer):  # bf16 autocast under AMP
            x_hat, q = tokenizer(x)  # the one tokenizer forward of the step
        logs = self.tokenizer_phase(x, x_hat, q, cond, y, optim_wrapper['tokenizer'], step)
        if self.gan_loss.is_active(step):
            logs.update(self.discriminator_phase(x, x_hat, optim_wrapper['discriminator']))
        logs.update(self.prior_phase(self.hard_tokens(q), cond, y, optim_wrapper['prior']))
        self.update_tokenizer_ema()
        self.update_prior_ema()
        self.code_usage.update(q.indices)
        return logs | assignment_stats(q.d, getattr(self.readout, 'tau', 1.0))

    @staticmethod
    def hard_tokens(q) -> Tensor:
        """The prior's input: ``argmin d`` indices (B, H, W) -> (B, N), detached."""
        return q.indices.detach().flatten(1)

    def tokenizer_phase(self, x: Tensor, x_hat: Tensor, q, cond: Tensor,
                        targets: Dict[str, Tensor], optim: OptimWrapper, step: int
                        ) -> Dict[str, Tensor]:
        """(1) Step the tokenizer; the prior and D only pass gradients through."""
        with frozen(self.prior, eval_mode=True), frozen(self.discriminator), \
                optim.optim_context(self.train_module('tokenizer')):
            losses = self.reconstruction_losses(x, x_hat, q, step)
            guidance, metrics = self.guidance_losses(q, cond, targets)
            losses.update(guidance)
            loss = sum(losses.values())
            optim.update_params(loss)
        return prefixed('tokenizer', losses, loss) | {
            f'tokenizer/soft_{k}': v for k, v in metrics.items()}

    def guidance_losses(self, q, cond: Tensor, targets: Dict[str, Tensor]
                        ) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """What the (frozen) prior tells the tokenizer: the soft-branch alignment only."""
        probs = self.readout(q.d)  # (B, N, K), differentiable through q.d
        loss_align, metrics = self.prior.align(probs, cond, targets)
        return dict(loss_align_soft=self.lambda_align * loss_align), metrics
