"""Stage 2 and the LlamaGen-REPA baseline: the prior trained on a frozen tokenizer.

    tokens = tokenizer.encode(x).indices        frozen, eval mode, no grad; encoded online
    y      = teachers(x)                        frozen, no grad
    (3) prior  loss = CE(AR(tokens[:, :-1], class), tokens) + lambda_ar * align(proj(AR_{<=D}(tokens)), y)
    (4) EMA(prior)
One model, three configs: ``ar-init`` (continue the stage-1 prior on the stage-1 EMA tokenizer),
``vq-only`` (fresh prior on the stage-1 EMA tokenizer), baseline (fresh prior on the stage-0 EMA
tokenizer). Optimizer group: ``prior``.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapperDict
from torch import Tensor

from gear.apis.weights import load_submodules, load_tokenizer_weights
from gear.registry import MODELS, TOKENIZERS
from gear.utils.frozen import freeze

from .code_usage import CodeUsageMeter
from .prior import PriorPhaseMixin
from .tokenizer_warmup import TrainModules
from .align_eval import per_sample_alignment


@MODELS.register_module()
class FrozenTokenizerAR(PriorPhaseMixin, TrainModules, BaseModel):
    """AR (+ REPA) on a frozen tokenizer.

    Args:
        tokenizer (dict): TOKENIZERS config (architecture of the frozen tokenizer).
        tokenizer_from (dict): where its weights come from: ``dict(checkpoint=PATH,
            prefix='tokenizer_ema.module')`` for an earlier stage's ``final.pth`` (the EMA
            tokenizer), or ``dict(checkpoint=PATH)`` for a tokenizer weights file or a released
            tokenizer checkpoint; None when the weights come from a checkpoint of this model
            loaded afterwards (``gear.apis.load_model``).
        prior (dict): ``Prior`` kwargs: ``ar``, ``align_loss``, ``align_depth``.
        teachers (dict): name -> ALIGN_ENCODERS config.
        lambda_ar (float): weight of the hard-branch alignment.
        ema_decay (float): decay of the prior EMA.
        prior_from (dict, optional): ``dict(checkpoint=PATH, modules={'prior': 'prior',
            'prior_ema': 'prior_ema'})`` to continue a stage-1 prior (``ar-init``).
        val_use_ema (bool): validate the EMA prior (default) or the online one.
    """
    train_module_names = ('prior',)  # the tokenizer is frozen: never in a DDP / DeepSpeed engine

    def __init__(self, tokenizer: dict, tokenizer_from: Optional[dict], prior: dict, teachers: dict,
                 lambda_ar: float = 0.5, ema_decay: float = 0.9999,
                 prior_from: Optional[dict] = None, val_use_ema: bool = True,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.tokenizer = TOKENIZERS.build(tokenizer)
        prefix = tokenizer_from.get('prefix') if tokenizer_from is not None else None
        if prefix:
            load_submodules(self, tokenizer_from['checkpoint'], {prefix: 'tokenizer'})
        elif tokenizer_from is not None:
            load_tokenizer_weights(self.tokenizer, tokenizer_from['checkpoint'])
        freeze(self.tokenizer)
        self.build_prior(prior, teachers, self.tokenizer.codebook_size, ema_decay)
        if prior_from is not None:
            load_submodules(self, prior_from['checkpoint'], prior_from['modules'])
        self.code_usage = CodeUsageMeter(self.tokenizer.codebook_size)
        self.lambda_ar, self.val_use_ema = lambda_ar, val_use_ema

    def train(self, mode: bool = True) -> 'FrozenTokenizerAR':
        super().train(mode)
        self.tokenizer.eval()  # frozen: never in training mode
        return self

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> hard tokens (B, N) of the frozen tokenizer."""
        return self.tokenizer.encode(x).indices.flatten(1)  # (B, h, w) -> (B, N)

    def train_step(self, data: dict, optim_wrapper: OptimWrapperDict) -> Dict[str, Tensor]:
        data = self.data_preprocessor(data, True)
        x, cond = data['img'], data['label']
        tokens, y = self.encode(x), self.teacher_features(x)
        logs = self.prior_phase(tokens, cond, y, optim_wrapper['prior'])
        self.update_prior_ema()
        self.code_usage.update(tokens)
        return logs

    def forward(self, img: Tensor, label: Tensor, mode: str = 'tensor'):
        """``mode='tensor'``: next-token logits (B, N, V) of the evaluation prior."""
        prior = self.prior_ema.module if self.val_use_ema else self.prior
        return prior.ar(self.encode(img)[:, :-1], label).logits

    @torch.no_grad()
    def val_step(self, data: dict) -> List[dict]:
        """Per-image NTP loss and AR-vs-teacher cosine of the evaluation prior (class kept)."""
        data = self.data_preprocessor(data, False)
        x, cond = data['img'], data['label']
        tokens, y = self.encode(x), self.teacher_features(x)
        prior = self.prior_ema.module if self.val_use_ema else self.prior
        out = prior.ar(tokens[:, :-1], cond, return_hidden_at=prior.align_depth)
        ntp = F.cross_entropy(out.logits.transpose(1, 2), tokens, reduction='none').mean(1)  # (B,)
        cos = per_sample_alignment(prior.align_loss, out.hidden, y)  # {name: (B,)}
        return [dict(loss_ntp=float(ntp[i]), **{f'cos/{n}': float(c[i]) for n, c in cos.items()})
                for i in range(x.shape[0])]

    test_step = val_step
