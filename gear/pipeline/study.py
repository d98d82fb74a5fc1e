"""A reproduction study: does a fresh AR learn faster on the GEAR tokenizer than on the warm-up
tokenizer it started from? Over seeds, with the ablations that explain the answer.

A study config names three stage configs and what varies:

    warmup   stage 0, run once (seed 0): the tokenizer every arm starts from
    stage1   the GEAR joint stage; each ``variants`` entry is a set of ``--cfg-options`` for it
             (the reference GEAR, straight-through end to end, tau, lambda = 0, ...)
    ar       the frozen-tokenizer AR stage: a fresh AR on a variant's stage-1 tokenizer
             (``vq-only``), and the baseline: the same AR on the warm-up tokenizer

For every variant and each of its seeds: ``{variant}_s{seed}`` (stage 1) then
``{variant}_s{seed}_ar``; for every seed: ``baseline_s{seed}_ar``. Seed s sets
``randomness.seed`` and so the AR's initialisation and the data order, which are therefore the
same for every arm of one seed; the step budget is the ``ar`` config's for all of them.

``stage_options`` adds ``--cfg-options`` to every stage of a kind; ``{work_dir}`` in a string
value becomes the study's work dir (e.g. a teacher feature cache shared by all its runs).

The study is an ordinary ``Pipeline`` (complete stages skipped, unfinished ones resumed, several
at once with ``jobs``); ``gear.pipeline.study_report`` turns its logs into ``study.json``, plots and
``report.md``.
"""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from mmengine.config import Config

from .chain import Pipeline, Stage, _abs

WARMUP = 'warmup'
REFERENCE_VARIANT = 'gear'


def stage1_name(variant: str, seed: int) -> str:
    return f'{variant}_s{seed}'


def ar_name(arm: str, seed: int) -> str:
    """The AR stage of ``arm`` (a variant, or ``baseline``) at ``seed``."""
    return f'{arm}_s{seed}_ar'


@dataclass
class Study:
    source: str
    work_dir: str
    warmup: str
    stage1: str
    ar: str
    seeds: List[int]
    variants: Dict[str, Dict[str, object]]
    variant_seeds: Dict[str, List[int]]
    stage_options: Dict[str, Dict[str, object]] = field(default_factory=dict)
    evaluate: Dict[str, object] = field(default_factory=dict)
    jobs: int = 1

    def arms(self) -> List[str]:
        return list(self.variants) + ['baseline']

    def seeds_of(self, arm: str) -> List[int]:
        return self.seeds if arm == 'baseline' else self.variant_seeds[arm]

    def pipeline(self) -> Pipeline:
        """The study's stages, stage-1 runs first so the longest chains start early."""
        opts = lambda kind, seed, extra=None: {  # noqa: E731
            **self.kind_options(kind), 'randomness.seed': seed, **(extra or {})}
        stages = [Stage(WARMUP, self.warmup, cfg_options=opts('warmup', 0))]
        for variant, extra in self.variants.items():
            for seed in self.variant_seeds[variant]:
                name = stage1_name(variant, seed)
                stages.append(Stage(name, self.stage1, {'model.init_from.0.checkpoint': WARMUP},
                                    opts('stage1', seed, extra)))
                stages.append(Stage(ar_name(variant, seed), self.ar,
                                    {'model.init_from.0.checkpoint': name}, opts('ar', seed)))
        for seed in self.seeds:
            stages.append(Stage(ar_name('baseline', seed), self.ar,
                                {'model.init_from.0.checkpoint': WARMUP}, opts('ar', seed)))
        evaluate = {k: v for k, v in self.evaluate.items() if k != 'seeds'}
        return Pipeline(work_dir=self.work_dir, stages=stages, source=self.source,
                        evaluate=dict(evaluate, stages=self.evaluated_stages()))

    def kind_options(self, kind: str) -> Dict[str, object]:
        """``stage_options[kind]`` with ``{work_dir}`` in string values filled in."""
        return {k: v.replace('{work_dir}', self.work_dir) if isinstance(v, str) else v
                for k, v in self.stage_options.get(kind, {}).items()}

    def evaluated_stages(self) -> List[str]:
        """AR stages evaluated after training: ``evaluate.seeds`` (default: the first seed) of
        every arm that ran at that seed."""
        seeds = self.evaluate.get('seeds', self.seeds[:1])
        return [ar_name(arm, s) for s in seeds for arm in self.arms() if s in self.seeds_of(arm)]


def load_study(path: str, work_dir: Optional[str] = None) -> Study:
    """Read and check a study config; errors name the file and key at fault."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'study config not found: {path}')
    cfg = Config.fromfile(path)
    for key in ('work_dir', 'warmup', 'stage1', 'ar', 'seeds', 'variants'):
        if key not in cfg:
            raise KeyError(f'{path}: missing key {key!r}')
    for key in ('warmup', 'stage1', 'ar'):
        if not osp.isfile(_abs(cfg[key])):
            raise FileNotFoundError(f'{path}: {key}: config not found: {cfg[key]}')
    seeds = [int(s) for s in cfg.seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f'{path}: seeds must be distinct and at least one, got {cfg.seeds}')
    variants = {name: dict(opts) for name, opts in cfg.variants.items()}
    if REFERENCE_VARIANT not in variants:
        raise ValueError(f'{path}: variants must include the reference {REFERENCE_VARIANT!r} '
                         f'(the GEAR arm compared with the baseline), got {sorted(variants)}')
    if 'baseline' in variants:
        raise ValueError(f'{path}: variants: "baseline" is the warm-up-tokenizer arm, not a variant')
    variant_seeds = {name: seeds for name in variants}
    for name, vs in dict(cfg.get('variant_seeds', {})).items():
        if name not in variants:
            raise ValueError(f'{path}: variant_seeds names unknown variant {name!r}')
        unknown = [s for s in vs if s not in seeds]
        if unknown or not vs:
            raise ValueError(f'{path}: variant_seeds[{name!r}] must be a non-empty subset of '
                             f'seeds {seeds}, got {vs}')
        variant_seeds[name] = [int(s) for s in vs]
    stage_options = {k: dict(v) for k, v in dict(cfg.get('stage_options', {})).items()}
    unknown = sorted(set(stage_options) - {'warmup', 'stage1', 'ar'})
    if unknown:
        raise ValueError(f'{path}: stage_options keys must be warmup / stage1 / ar, got {unknown}')
    return Study(source=path, work_dir=osp.abspath(work_dir or cfg.work_dir), warmup=cfg.warmup,
                 stage1=cfg.stage1, ar=cfg.ar, seeds=seeds, variants=variants,
                 variant_seeds=variant_seeds, stage_options=stage_options,
                 evaluate=dict(cfg.get('evaluate', {})), jobs=int(cfg.get('jobs', 1)))
