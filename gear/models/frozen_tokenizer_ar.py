"""Stage 2 and the LlamaGen-REPA baseline: the prior trained on a frozen tokenizer.

    tokens = tokenizer.encode(x).indices        frozen, eval mode, no grad; encoded online
    y      = teachers(x)                        frozen, no grad
    (3) prior  loss = CE(AR(tokens[:, :-1], cond), tokens) + lambda_ar * align(proj(AR_{<=D}(tokens)), y)
    (4) EMA(prior)
``cond`` is the class, or with ``text_encoder`` the caption embedding (``conditioning.py``).
From pre-extracted codes (``CodesDataset``, docs/codes.md) a batch carries ``tokens`` and the
teachers' ``targets`` instead of ``img``, and the two frozen passes are skipped: the same step
on the same images gives the same losses and weights
(tests/models/test_frozen_tokenizer_ar_codes.py). ``codes_keys`` says which codes this model may
read: its tokenizer's weights hash and its teachers' fingerprints (checked by ``CodesCheckHook``
when training starts).
One model, three configs, which differ in ``init_from`` only: ``ar-init`` (continue the stage-1
prior on the stage-1 EMA tokenizer), ``vq-only`` (fresh prior on the stage-1 EMA tokenizer),
baseline (fresh prior on the stage-0 EMA tokenizer). Optimizer group: ``prior``.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import ExponentialMovingAverage
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from gear.registry import MODELS, TOKENIZERS
from gear.utils.checkpoint import state_dict_sha256
from gear.utils.frozen import freeze

from .align.feature_cache import module_fingerprint
from .align_eval import per_sample_alignment
from .code_usage import CodeUsageMeter
from .conditioning import build_text_encoder, condition
from .phases import prior_step, update_ema
from .prior import build_prior, build_teachers, teacher_features, teacher_maps
from .stage_model import StageModel


@MODELS.register_module()
class FrozenTokenizerAR(StageModel):
    """AR (+ REPA) on a frozen tokenizer.

    Args:
        tokenizer (dict): TOKENIZERS config (architecture of the frozen tokenizer).
        prior (dict): ``Prior`` kwargs: ``ar``, ``align_loss``, ``align_depth``.
        teachers (dict): name -> ALIGN_ENCODERS config.
        lambda_ar (float): weight of the hard-branch alignment.
        ema_decay (float): decay of the prior EMA.
        val_use_ema (bool): validate the EMA prior (default) or the online one.
        text_encoder (dict, optional): TEXT_ENCODERS config (frozen, not in checkpoints): the
            prior is conditioned on ``data['caption']`` (the AR needs ``caption_dim``).
        init_from (list[dict], optional): where the tokenizer (and, for ``ar-init``, the prior)
            come from, e.g. ``[dict(checkpoint=STAGE1, modules={'tokenizer_ema.module':
            'tokenizer', 'prior': 'prior', 'prior_ema': 'prior_ema'})]``, or a released tokenizer
            with ``modules=dict(tokenizer='tokenizer')`` (``gear.models.init_from``).
    """
    train_module_names = ('prior',)  # the tokenizer is frozen: never in a DDP / DeepSpeed engine
    ema_of = dict(prior_ema='prior')

    def __init__(self, tokenizer: dict, prior: dict, teachers: dict, lambda_ar: float = 0.5,
                 ema_decay: float = 0.9999, val_use_ema: bool = True,
                 text_encoder: Optional[dict] = None, init_from: Optional[Sequence[dict]] = None,
                 data_preprocessor: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(init_from, data_preprocessor, init_cfg)
        self.tokenizer = freeze(TOKENIZERS.build(tokenizer))
        self.teachers = build_teachers(teachers)
        self.prior = build_prior(prior, self.teachers, self.tokenizer.codebook_size)
        self.text_encoder = build_text_encoder(text_encoder, self.prior)
        self.prior_ema = ExponentialMovingAverage(self.prior, momentum=1.0 - ema_decay)
        self.code_usage = CodeUsageMeter(self.tokenizer.codebook_size)
        self.lambda_ar, self.val_use_ema = lambda_ar, val_use_ema

    def init_weights(self) -> None:
        """Training starts: ``init_from`` must load the frozen tokenizer (else it stays random)."""
        if not self._init_from_applied and not any(
                'tokenizer' in e['modules'].values() for e in self.init_from):
            raise ValueError("model.init_from must load the frozen tokenizer, e.g. [dict(checkpoint="
                             "STAGE1_FINAL, modules={'tokenizer_ema.module': 'tokenizer'})]")
        super().init_weights()

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
        tokens, y = self.tokens_and_targets(data)  # (B, N) long; {name: (B, N, C)}
        cond = condition(data, self.text_encoder)  # (B,) or ((B, T, C), (B, T))
        logs = self.prior_phase(tokens, cond, y, optim_wrapper['prior'])  # (3)
        update_ema(self.prior_ema, self.prior, optim_wrapper['prior'])  # (4)
        self.code_usage.update(tokens)
        return logs

    def tokens_and_targets(self, data: dict) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Hard tokens (B, N) and teacher targets {name: (B, N, C)}: encoded online from
        ``img``, or read from pre-extracted codes (``tokens``, and ``teacher_maps`` {name:
        (B, C, h, w)}, finished by each teacher's ``targets_from_map`` as online)."""
        if 'tokens' not in data:
            x = data['img']
            return self.encode(x), self.teacher_features(x)
        maps = data['teacher_maps']
        if set(maps) != set(self.teachers):
            raise KeyError(f'codes batch holds the maps of teachers {sorted(maps)}, '
                           f'model.teachers has {sorted(self.teachers)}')
        return data['tokens'], {n: t.targets_from_map(maps[n]) for n, t in self.teachers.items()}

    def prior_phase(self, tokens: Tensor, cond: Tensor, y: Dict[str, Tensor],
                    optim: OptimWrapper) -> Dict[str, Tensor]:
        """(3) Step AR + projectors on the frozen tokenizer's tokens (B, N)."""
        return prior_step(self.train_module('prior'), tokens, cond, y, self.lambda_ar, optim)

    def teacher_features(self, x: Tensor) -> Dict[str, Tensor]:
        return teacher_features(self.teachers, x)

    def teacher_maps(self, x: Tensor) -> Dict[str, Tensor]:
        return teacher_maps(self.teachers, x)

    def codes_keys(self) -> dict:
        """What pre-extracted codes must have been made with to stand for this model's passes:
        the sha256 of its tokenizer's weights (as loaded) and each teacher's fingerprint."""
        return dict(tokenizer_sha256=state_dict_sha256(self.tokenizer.state_dict()),
                    teachers={n: dict(fingerprint=module_fingerprint(t),
                                      repr=f'{type(t).__name__}({t.extra_repr()})')
                              for n, t in self.teachers.items()})

    def tokenizer_source(self) -> str:
        """Where the tokenizer weights came from, in words (for error messages)."""
        if self.init_from_skipped:
            return self.init_from_skipped
        for i, entry in enumerate(self.init_from):
            for src, dst in entry['modules'].items():
                if dst == 'tokenizer':
                    return (f"model.init_from[{i}].checkpoint={entry['checkpoint']} "
                            f'({src!r} -> tokenizer)')
        return 'no init_from: the tokenizer as built (random)'

    def forward(self, img: Tensor, label: Tensor, mode: str = 'tensor'):
        """``mode='tensor'``: next-token logits (B, N, V) of the evaluation prior."""
        prior = self.prior_ema.module if self.val_use_ema else self.prior
        return prior.ar(self.encode(img)[:, :-1], label).logits

    @torch.no_grad()
    def val_step(self, data: dict) -> List[dict]:
        """Per-image NTP loss and AR-vs-teacher cosine of the evaluation prior (condition kept)."""
        data = self.data_preprocessor(data, False)
        tokens, y = self.tokens_and_targets(data)  # (B, N); {name: (B, N, C)}
        cond = condition(data, self.text_encoder)  # (B,) or ((B, T, C), (B, T))
        prior = self.prior_ema.module if self.val_use_ema else self.prior
        out = prior.ar(tokens[:, :-1], cond, return_hidden_at=prior.align_depth)
        ntp = F.cross_entropy(out.logits.transpose(1, 2), tokens, reduction='none').mean(1)  # (B,)
        cos = per_sample_alignment(prior.align_loss, out.hidden, y)  # {name: (B,)}
        return [dict(loss_ntp=float(ntp[i]), **{f'cos/{n}': float(c[i]) for n, c in cos.items()})
                for i in range(tokens.shape[0])]

    test_step = val_step
