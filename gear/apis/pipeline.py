"""Run a pipeline of stages, each ``tools/train.py`` in its own work dir, in dependency order.

A pipeline config lists ``stages`` (name, config, ``inputs``: config key -> earlier stage whose
exported ``final.pth`` it reads, optional ``cfg_options``) and a ``work_dir``. A stage whose
``final.pth`` exists is complete and skipped; an unfinished one is resumed from its newest
checkpoint. The SLURM launcher submits the same stages as dependent jobs.

An optional ``evaluate`` dict (``stages`` plus ``gear.apis.evaluate.evaluate_checkpoint``
keyword arguments) evaluates the named stages' ``final.pth`` once they are complete, into
``{stage}/evaluation.json``; a results file made with the same options is not redone.
"""
import json
import os
import os.path as osp
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from mmengine.config import Config

from gear.engine.hooks.export_weights import FINAL_WEIGHTS

EVALUATION_RESULTS = 'evaluation.json'
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@dataclass
class Stage:
    """One stage: ``tools/train.py config`` with the inputs of earlier stages filled in."""
    name: str
    config: str
    inputs: Dict[str, str] = field(default_factory=dict)
    cfg_options: Dict[str, object] = field(default_factory=dict)

    @property
    def depends_on(self) -> List[str]:
        return sorted(set(self.inputs.values()))


@dataclass
class Pipeline:
    work_dir: str
    stages: List[Stage]
    compare: Dict[str, str] = field(default_factory=dict)
    source: str = ''
    evaluate: Dict[str, object] = field(default_factory=dict)

    def stage_dir(self, name: str) -> str:
        return osp.join(self.work_dir, name)

    def final_weights(self, name: str) -> str:
        return osp.join(self.stage_dir(name), FINAL_WEIGHTS)

    def is_complete(self, name: str) -> bool:
        return osp.isfile(self.final_weights(name))

    def evaluation_results(self, name: str) -> str:
        return osp.join(self.stage_dir(name), EVALUATION_RESULTS)

    def options(self, stage: Stage, extra: Optional[Dict[str, object]] = None) -> Dict[str, object]:
        """The ``--cfg-options`` of a stage: inputs as paths, its own options, then ``extra``."""
        opts = {key: self.final_weights(src) for key, src in stage.inputs.items()}
        return {**opts, **stage.cfg_options, **(extra or {})}

    def train_command(self, stage: Stage, extra: Optional[Dict[str, object]] = None) -> List[str]:
        cmd = [osp.join(REPO, 'tools', 'train.py'), _abs(stage.config), '--work-dir',
               self.stage_dir(stage.name), '--resume']
        opts = self.options(stage, extra)
        if opts:
            cmd += ['--cfg-options'] + [f'{k}={_fmt(v)}' for k, v in opts.items()]
        return cmd


def _abs(path: str) -> str:
    return path if osp.isabs(path) else osp.join(REPO, path)


def _fmt(value) -> str:
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_fmt(v) for v in value) + ']'
    return str(value)


def load_pipeline(path: str, work_dir: Optional[str] = None) -> Pipeline:
    """Read and validate a pipeline config; errors name the stage and key at fault."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'pipeline config not found: {path}')
    cfg = Config.fromfile(path)
    stages, seen = [], set()
    for i, s in enumerate(cfg.get('stages', [])):
        stage = Stage(name=s['name'], config=s['config'], inputs=dict(s.get('inputs', {})),
                      cfg_options=dict(s.get('cfg_options', {})))
        where = f'{path}: stages[{i}] ({stage.name})'
        if stage.name in seen:
            raise ValueError(f'{where}: duplicate stage name')
        if not osp.isfile(_abs(stage.config)):
            raise FileNotFoundError(f'{where}: config not found: {stage.config}')
        for key, src in stage.inputs.items():
            if src not in seen:
                raise ValueError(f'{where}: inputs[{key!r}] names {src!r}, which is not an '
                                 f'earlier stage (earlier: {sorted(seen)})')
        seen.add(stage.name)
        stages.append(stage)
    if not stages:
        raise ValueError(f'{path}: no stages')
    compare = dict(cfg.get('compare', {}))
    for role, name in compare.items():
        if name not in seen:
            raise ValueError(f'{path}: compare.{role} names unknown stage {name!r}')
    evaluate = dict(cfg.get('evaluate', {}))
    unknown = [name for name in evaluate.get('stages', []) if name not in seen]
    if unknown:
        raise ValueError(f'{path}: evaluate.stages names unknown stage(s) {unknown}')
    return Pipeline(work_dir=osp.abspath(work_dir or cfg.work_dir), stages=stages, compare=compare,
                    source=path, evaluate=evaluate)


def run_pipeline(pipeline: Pipeline, only: Optional[List[str]] = None,
                 extra: Optional[Dict[str, object]] = None, log=print) -> None:
    """Run the stages in order (or ``only`` those), skipping complete ones."""
    os.makedirs(pipeline.work_dir, exist_ok=True)
    for stage in pipeline.stages:
        if only and stage.name not in only:
            continue
        if pipeline.is_complete(stage.name):
            log(f'[pipeline] {stage.name}: complete ({pipeline.final_weights(stage.name)}), skipped')
            continue
        missing = [d for d in stage.depends_on if not pipeline.is_complete(d)]
        if missing:
            raise RuntimeError(f'[pipeline] {stage.name} needs {missing} complete first')
        cmd = [sys.executable] + pipeline.train_command(stage, extra)
        log(f'[pipeline] {stage.name}: {" ".join(cmd)}')
        proc = subprocess.run(cmd, cwd=REPO)
        if proc.returncode != 0:
            raise RuntimeError(f'[pipeline] stage {stage.name} failed (exit {proc.returncode}); '
                               f'its log is in {pipeline.stage_dir(stage.name)}; rerun to resume')
        if not pipeline.is_complete(stage.name):
            raise RuntimeError(f'[pipeline] {stage.name} ended without {FINAL_WEIGHTS}')


def evaluation_request(pipeline: Pipeline, overrides: Optional[Dict[str, object]] = None) -> dict:
    """The pipeline's ``evaluate`` options with ``overrides`` (dotted keys reach into dicts,
    e.g. ``sampling.cfg_scale``); ``cache_dir`` defaults to ``{work_dir}/fid_cache``."""
    request = json.loads(json.dumps(pipeline.evaluate))  # a deep, JSON-able copy
    request.setdefault('cache_dir', osp.join(pipeline.work_dir, 'fid_cache'))
    for key, value in (overrides or {}).items():
        *parents, leaf = key.split('.')
        node = request
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return request


def run_evaluation(pipeline: Pipeline, overrides: Optional[Dict[str, object]] = None,
                   log=print) -> Dict[str, str]:
    """Evaluate the complete ``evaluate.stages``; {stage: results JSON path}. A stage whose
    results file was written with the same request is skipped."""
    from .evaluate import evaluate_checkpoint, write_results
    request = evaluation_request(pipeline, overrides)
    stages = request.pop('stages', [])
    done = {}
    for name in stages:
        path = pipeline.evaluation_results(name)
        if not pipeline.is_complete(name):
            log(f'[pipeline] evaluate {name}: stage not complete, skipped')
            continue
        if osp.isfile(path):
            with open(path) as f:
                if json.load(f).get('request') == request:
                    log(f'[pipeline] evaluate {name}: done ({path}), skipped')
                    done[name] = path
                    continue
        log(f'[pipeline] evaluate {name}: {pipeline.final_weights(name)}')
        grid = osp.join(pipeline.stage_dir(name), 'evaluation_samples.png')
        results = evaluate_checkpoint(pipeline.final_weights(name), grid_path=grid, log=log,
                                      **request)
        write_results(path, dict(results, request=request))
        done[name] = path
    return done
