"""Run a pipeline of stages, each ``python -m gear.train`` in its own work dir, in dependency order.

A pipeline config lists ``stages`` (name, config, ``inputs``: config key -> earlier stage whose
exported ``final.pth`` it reads, optional ``cfg_options``) and a ``work_dir``. A stage whose
``final.pth`` exists is complete and skipped; an unfinished one is resumed from its newest
checkpoint. The SLURM launcher submits the same stages as dependent jobs. Relative config paths
are found from the working directory, else in the installed package (``find_config``); stages
run in the caller's working directory, so relative paths in configs mean the same as for
``python -m gear.train``.

A stage of ``kind='codes'`` extracts the codes of a stage-2 / baseline config instead of
training (``python -m gear.extract_codes CONFIG --out {work_dir}/{name}``, docs/codes.md); it is
complete when its codes are (``meta.json``), an interrupted one is completed by the rerun, and
a later stage's ``inputs`` maps a key (``train_dataloader.dataset.root``) to the codes directory.

An optional ``evaluate`` dict (``stages`` plus ``gear.apis.evaluate.evaluate_checkpoint``
keyword arguments) evaluates the named stages' ``final.pth`` once they are complete, into
``{stage}/evaluation.json``; a results file made with the same options is not redone.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from mmengine.config import Config

from gear.datasets.codes_store import META as CODES_META  # present once codes are complete
from gear.engine.hooks.export_weights import FINAL_WEIGHTS
from gear.utils.config_path import find_config

from .progress import StageProgress, StepProgress, log_line

EVALUATION_RESULTS = 'evaluation.json'
STAGE_MODULES = {'train': 'gear.train', 'codes': 'gear.extract_codes'}  # kind -> entry point
POLL_S = 0.5  # how often a running stage is checked on


@dataclass
class Stage:
    """One stage: ``python -m gear.train config`` with the inputs of earlier stages filled in."""
    name: str
    config: str
    inputs: Dict[str, str] = field(default_factory=dict)
    cfg_options: Dict[str, object] = field(default_factory=dict)
    kind: str = 'train'  # or 'codes': extract the config's codes (gear.extract_codes)

    @property
    def module(self) -> str:
        return STAGE_MODULES[self.kind]

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
    stage_options: Dict[str, Dict[str, object]] = field(default_factory=dict)  # name -> options

    def stage_dir(self, name: str) -> str:
        return osp.join(self.work_dir, name)

    def final_weights(self, name: str) -> str:
        return osp.join(self.stage_dir(name), FINAL_WEIGHTS)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def output(self, name: str) -> str:
        """What a later stage reads of stage ``name``: its ``final.pth``, or its codes dir."""
        if self.stage(name).kind == 'codes':
            return self.stage_dir(name)
        return self.final_weights(name)

    def is_complete(self, name: str) -> bool:
        if self.stage(name).kind == 'codes':
            return osp.isfile(osp.join(self.stage_dir(name), CODES_META))
        return osp.isfile(self.final_weights(name))

    def log_file(self, name: str) -> str:
        """Where a stage run with ``jobs`` > 1 logs: in its dir, beside a codes dir (which
        appears only complete)."""
        if self.stage(name).kind == 'codes':
            return self.stage_dir(name) + '.log'
        return osp.join(self.stage_dir(name), 'pipeline.log')

    def evaluation_results(self, name: str) -> str:
        return osp.join(self.stage_dir(name), EVALUATION_RESULTS)

    def options(self, stage: Stage, extra: Optional[Dict[str, object]] = None) -> Dict[str, object]:
        """The ``--cfg-options`` of a stage: inputs as paths, its own options, ``extra`` (every
        stage's), then ``stage_options[stage.name]`` (``--stage-options``)."""
        opts = {key: self.output(src) for key, src in stage.inputs.items()}
        return {**opts, **stage.cfg_options, **(extra or {}),
                **self.stage_options.get(stage.name, {})}

    def set_stage_options(self, options: Dict[str, object]) -> None:
        """``{'STAGE:key': value}`` (``--stage-options STAGE:key=value``) into
        ``stage_options``; an unknown or missing stage name is an error naming it."""
        names = [s.name for s in self.stages]
        for key, value in options.items():
            name, sep, option = key.partition(':')
            if not sep or name not in names or not option:
                raise ValueError(f'--stage-options {key}={value}: STAGE:KEY=VALUE with STAGE one '
                                 f'of {names}')
            self.stage_options.setdefault(name, {})[option] = value

    def plan(self, extra: Optional[Dict[str, object]] = None, nproc_per_node: int = 1) -> str:
        """What ``--dry-run`` prints: each stage's state, dependencies and command."""
        return '\n'.join(
            f'{s.name} [{"complete" if self.is_complete(s.name) else "to run"}] after '
            f'{s.depends_on or "-"}:\n  '
            + ' '.join(stage_command(self, s, extra, nproc_per_node)[1:])
            for s in self.stages)

    def train_args(self, stage: Stage, extra: Optional[Dict[str, object]] = None) -> List[str]:
        """The arguments of a stage's entry point (``gear.train.build_parser`` parses a training
        stage's, ``gear.extract_codes.build_parser`` a codes stage's)."""
        if stage.kind == 'codes':  # the extraction completes a partial one by itself
            args = [_abs(stage.config), '--out', self.stage_dir(stage.name), '--no-progress']
        else:
            args = [_abs(stage.config), '--work-dir', self.stage_dir(stage.name), '--resume']
        opts = self.options(stage, extra)
        if opts:
            args += ['--cfg-options'] + [f'{k}={_fmt(v)}' for k, v in opts.items()]
        return args

    def train_command(self, stage: Stage, extra: Optional[Dict[str, object]] = None) -> List[str]:
        return ['-m', stage.module] + self.train_args(stage, extra)


def _abs(path: str) -> str:
    """A config path made absolute (``find_config``); a missing one is returned as given."""
    try:
        return osp.abspath(find_config(path))
    except FileNotFoundError:
        return path


def _fmt(value) -> str:
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_fmt(v) for v in value) + ']'
    return str(value)


def load_pipeline(path: str, work_dir: Optional[str] = None) -> Pipeline:
    """Read and validate a pipeline config; errors name the stage and key at fault."""
    try:
        path = find_config(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f'pipeline {e}') from None
    cfg = Config.fromfile(path)
    stages, seen = [], set()
    for i, s in enumerate(cfg.get('stages', [])):
        stage = Stage(name=s['name'], config=s['config'], inputs=dict(s.get('inputs', {})),
                      cfg_options=dict(s.get('cfg_options', {})), kind=s.get('kind', 'train'))
        where = f'{path}: stages[{i}] ({stage.name})'
        if stage.kind not in STAGE_MODULES:
            raise ValueError(f'{where}: kind {stage.kind!r}: one of {sorted(STAGE_MODULES)}')
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


def launch_command(nproc_per_node: int = 1) -> List[str]:
    """How a stage's ``-m gear.train`` is started: ``python`` for one process, else
    ``python -m torch.distributed.run --standalone --nproc_per_node N`` (its ``--launcher
    pytorch`` is added by :func:`stage_command`)."""
    if nproc_per_node < 1:
        raise ValueError(f'--nproc-per-node must be >= 1, got {nproc_per_node}')
    if nproc_per_node == 1:
        return [sys.executable]
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone',
            f'--nproc_per_node={nproc_per_node}']


def stage_command(pipeline: Pipeline, stage: Stage, extra: Optional[Dict[str, object]] = None,
                  nproc_per_node: int = 1) -> List[str]:
    """The full command line of one stage, on ``nproc_per_node`` processes."""
    launcher = ['--launcher', 'pytorch'] if nproc_per_node > 1 and stage.kind == 'train' else []
    return launch_command(nproc_per_node) + pipeline.train_command(stage, extra) + launcher


def run_pipeline(pipeline: Pipeline, only: Optional[List[str]] = None,
                 extra: Optional[Dict[str, object]] = None, log=log_line, jobs: int = 1,
                 nproc_per_node: int = 1, progress_interval: float = 30.0) -> None:
    """Run the stages (or ``only`` those), skipping complete ones, in dependency order.

    ``jobs`` > 1 runs up to that many independent stages at once, the cores split between
    those that can run (a stage alone gets them all), each one's output in
    ``{stage}/pipeline.log`` (a codes stage's in ``{stage}.log``) (on a 2-core CPU two
    one-thread stages finish sooner than the same two stages one after another). A failed stage
    stops new launches; the running ones finish, then the error names the stage and its log.
    ``nproc_per_node`` > 1 runs each stage under torchrun (``--launcher pytorch``).
    Each stage's ``stage k/N`` line comes at its launch, at its end and every
    ``progress_interval`` seconds while it runs (0: not then), with its step, elapsed time, its
    ETA and the pipeline's (``gear.pipeline.progress``).
    """
    os.makedirs(pipeline.work_dir, exist_ok=True)
    todo = []
    for stage in pipeline.stages:
        if only and stage.name not in only:
            continue
        if pipeline.is_complete(stage.name):
            log(f'[pipeline] {stage.name}: complete ({pipeline.output(stage.name)}), skipped')
            continue
        todo.append(stage)
    scheduled = {s.name for s in todo}
    for stage in todo:
        missing = [d for d in stage.depends_on
                   if not pipeline.is_complete(d) and d not in scheduled]
        if missing:
            raise RuntimeError(f'[pipeline] {stage.name} needs {missing} complete first')
    progress = StageProgress(pipeline, todo, extra, jobs, log, progress_interval)
    if jobs <= 1:
        for stage in todo:
            cmd = stage_command(pipeline, stage, extra, nproc_per_node)
            progress.start(stage.name)
            log(f'{progress.label(stage.name)}: {" ".join(cmd)}')
            _check_stage(pipeline, stage, _wait(subprocess.Popen(cmd), progress))
            progress.finish(stage.name)
        return
    _run_parallel(pipeline, todo, extra, log, jobs, nproc_per_node, progress)


def _wait(proc: subprocess.Popen, progress: StageProgress) -> int:
    """``proc``'s exit status, the progress lines printed while it runs. On Ctrl-C (which the
    stage gets too: it saves a checkpoint and exits) it waits for the stage, then re-raises."""
    try:
        while True:
            try:
                return proc.wait(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                progress.tick()
    except KeyboardInterrupt:
        proc.wait()
        raise


def _check_stage(pipeline: Pipeline, stage: Stage, returncode: int, log_file: str = '') -> None:
    where = log_file or f'its log is in {pipeline.stage_dir(stage.name)}'
    if returncode != 0:
        raise RuntimeError(f'[pipeline] stage {stage.name} failed (exit {returncode}); {where}; '
                           f'rerun to resume')
    if not pipeline.is_complete(stage.name):
        raise RuntimeError(f'[pipeline] {stage.name} ended without {pipeline.output(stage.name)}'
                           f'; {where}')


def _run_parallel(pipeline: Pipeline, todo: List[Stage], extra, log, jobs: int,
                  nproc_per_node: int, progress: StageProgress) -> None:
    """Launch ready stages (dependencies complete) up to ``jobs`` at a time."""
    running, failed, pending = {}, None, list(todo)
    while pending or running:
        ready = [s for s in pending if all(pipeline.is_complete(d) for d in s.depends_on)]
        while failed is None and ready and len(running) < jobs:
            # the cores split between what runs now: a stage alone gets them all
            threads = max(1, (os.cpu_count() or 1) // min(jobs, len(running) + len(ready))
                          // nproc_per_node)
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            stage = ready.pop(0)
            pending.remove(stage)
            log_file = pipeline.log_file(stage.name)
            os.makedirs(osp.dirname(log_file), exist_ok=True)
            cmd = stage_command(pipeline, stage, extra, nproc_per_node)
            progress.start(stage.name)
            log(f'{progress.label(stage.name)} ({threads} threads, log {log_file}): '
                f'{" ".join(cmd)}')
            with open(log_file, 'a') as out:
                proc = subprocess.Popen(cmd, env=env, stdout=out,
                                        stderr=subprocess.STDOUT)
            running[stage.name] = (stage, proc, log_file)
        if not running:
            if failed is not None:
                break
            raise RuntimeError(f'[pipeline] cannot schedule {[s.name for s in pending]}: '
                               f'their inputs are not complete')
        ended = [name for name, (_, proc, _) in running.items() if proc.poll() is not None]
        if not ended:
            time.sleep(POLL_S)
            progress.tick()
            continue
        for name in ended:
            stage, proc, log_file = running.pop(name)
            try:
                _check_stage(pipeline, stage, proc.returncode, f'see {log_file}')
                progress.finish(stage.name)
            except RuntimeError as e:
                log(str(e))
                failed = failed or e
    if failed is not None:
        raise failed


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
                   log=log_line, jobs: int = 1, progress_interval: float = 30.0) -> Dict[str, str]:
    """Evaluate the complete ``evaluate.stages``; {stage: results JSON path}. A stage whose
    results file was written with the same request is skipped. ``jobs`` > 1 evaluates that
    many stages at once in worker processes, the threads split between them. Each evaluation's
    ``evaluate k/M`` line comes at its start, at its end with its time, and every
    ``progress_interval`` seconds while it runs (0: not then)."""
    request = evaluation_request(pipeline, overrides)
    stages = request.pop('stages', [])
    done, todo = {}, []
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
        todo.append((name, pipeline.final_weights(name), path,
                     osp.join(pipeline.stage_dir(name), 'evaluation_samples.png')))
    with StepProgress('evaluate', len(todo), log, progress_interval) as steps:
        if jobs <= 1 or len(todo) <= 1:
            for name, weights, path, grid in todo:
                steps.start(name, weights)
                _evaluate_stage(weights, path, grid, request, 0, log)
                steps.finish(name, path)
                done[name] = path
            return done
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context('spawn')) as pool:
            queue, running = list(todo), {}
            while queue or running:
                while queue and len(running) < jobs:  # started when submitted: none waits
                    name, weights, path, grid = queue.pop(0)
                    steps.start(name, weights)
                    running[pool.submit(_evaluate_stage, weights, path, grid, request,
                                        threads)] = name
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    done[name] = future.result()
                    steps.finish(name, done[name])
    return done


def _evaluate_stage(weights: str, path: str, grid: str, request: dict, threads: int,
                    log=None) -> str:
    """Evaluate one exported checkpoint into ``path`` (``threads`` > 0: torch threads)."""
    import torch

    from gear.apis.evaluate import evaluate_checkpoint, write_results
    if threads:
        torch.set_num_threads(threads)
    results = evaluate_checkpoint(weights, grid_path=grid, log=log or (lambda *a: None), **request)
    write_results(path, dict(results, request=request))
    return path
