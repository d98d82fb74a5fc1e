"""What a pipeline prints while it runs: a line per running stage when it starts, every
``interval`` seconds (0: never) and when it ends, and the same for each evaluation.

    [pipeline] stage 2/4 stage1_gear: iter 120/300 (40%), elapsed 1m05s, stage ETA 49s, pipeline ETA ~6m12s
    [pipeline] stage 2/4 stage1_gear: done in 2m01s, iter 300/300, pipeline ETA ~4m10s
    [pipeline] evaluate 1/2 stage2_vqonly: running, elapsed 30s

``k/N``: the k-th launch of the N stages this invocation runs (complete ones are skipped, and
said so, before). A stage's iteration and ETA are its own: ``{stage}/progress.json``, which its ``ProgressHook``
rewrites (gear/engine/hooks/progress.py): its time per step in this process, so a resumed stage
counts from the step it resumed at (``resumed at``); a file older than the stage's launch is an
earlier run's and is not read. ``elapsed`` is the time since the pipeline launched the stage,
start-up included.

The pipeline ETA is rough. It adds the running stages' ETAs and, for each stage not started
yet, its steps to go (``train_cfg.max_iters``, less the steps an earlier invocation's
``progress.json`` reached) times a time per step: a finished stage's of the same config (its
wall time over its steps, start-up included), else a running one's, else the mean of those
seen so far for any config. With ``jobs`` > 1 the sum is divided by ``jobs``, but is never
below the longest running stage's ETA (dependencies can leave workers idle, so this errs low).
Until a stage has run a step there is no pipeline ETA. Evaluation and codes stages
(extraction: no steps) are not part of it.
"""
import sys
import threading
import time
from typing import Callable, Dict, List, Optional

from mmengine.config import Config

from gear.engine.hooks.progress import read_progress
from gear.utils.config_path import find_config

MAX_ITERS_KEY = 'train_cfg.max_iters'


def log_line(line: str) -> None:
    """Print ``line`` in one write, flushed: the stages share this stdout, and ``print`` writes
    the text and its newline apart, so a stage's output could land inside a pipeline line."""
    sys.stdout.write(f'{line}\n')
    sys.stdout.flush()


def fmt_duration(seconds: float) -> str:
    """``45s``, ``1m05s``, ``2h03m``."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f'{s}s'
    if s < 3600:
        return f'{s // 60}m{s % 60:02d}s'
    return f'{s // 3600}h{s % 3600 // 60:02d}m'


def pipeline_eta(running: List[float], pending: List[float], jobs: int = 1) -> float:
    """Seconds until the last stage ends, roughly: ``running`` holds each running stage's
    seconds to go, ``pending`` each unstarted stage's estimate; their sum over ``jobs``, at
    least the longest running one."""
    return max(max(running, default=0.0), (sum(running) + sum(pending)) / max(1, jobs))


def step_time(config: str, finished: Dict[str, float],
              running: Dict[str, float]) -> Optional[float]:
    """Seconds per step of a stage of ``config``: a finished stage's of that config, else a
    running one's, else the mean of every config's; None before any stage ran a step."""
    if config in finished:
        return finished[config]
    if config in running:
        return running[config]
    seen = {**running, **finished}
    return sum(seen.values()) / len(seen) if seen else None


def planned_steps(config: str, options: Dict[str, object], work_dir: str) -> Optional[int]:
    """The steps a stage has to go: its ``train_cfg.max_iters`` (an option or the config's),
    less the step its last ``progress.json`` reached; None if the config says no number."""
    try:
        max_iters = options.get(MAX_ITERS_KEY)
        if max_iters is None:
            max_iters = Config.fromfile(find_config(config)).train_cfg.max_iters
        max_iters = int(max_iters)
    except Exception:  # an epoch-based or unreadable config: no estimate, nothing fails
        return None
    previous = read_progress(work_dir) or {}
    return max(0, max_iters - int(previous.get('iter', 0)))


class StageProgress:
    """The ``stage k/N`` lines of one invocation's ``stages`` (a list of ``chain.Stage``).

    Args:
        pipeline: The ``chain.Pipeline`` (stage dirs, configs, options).
        stages: The stages this invocation runs, in launch order.
        extra: The ``--cfg-options`` given for every stage.
        jobs: Stages at once (the pipeline ETA divides by it).
        log: Where lines go.
        interval: Seconds between the periodic lines (0: none).
    """

    def __init__(self, pipeline, stages, extra=None, jobs: int = 1, log: Callable = log_line,
                 interval: float = 30.0):
        self.pipeline, self.jobs, self.log, self.interval = pipeline, jobs, log, interval
        self.names = [s.name for s in stages]
        self.number: Dict[str, int] = {}  # name -> k: the k-th stage launched
        self.total = len(stages)
        self.config = {s.name: s.config for s in stages}
        self.codes = {s.name for s in stages if s.kind == 'codes'}  # no steps, no estimate
        self.steps_left = {s.name: None if s.name in self.codes else planned_steps(
            s.config, pipeline.options(s, extra), pipeline.stage_dir(s.name)) for s in stages}
        self.started: Dict[str, tuple] = {}  # name -> (monotonic, Unix time) at launch
        self.ended: set = set()
        self.finished_rates: Dict[str, float] = {}  # config -> s per step, start-up included
        self.running_rates: Dict[str, float] = {}  # config -> a running stage's s per step
        self.last_tick = time.monotonic()

    def label(self, name: str) -> str:
        return f'[pipeline] stage {self.number[name]}/{self.total} {name}'

    def start(self, name: str) -> None:
        self.number[name] = len(self.number) + 1
        self.started[name] = (time.monotonic(), time.time())

    def progress(self, name: str) -> Optional[dict]:
        """The stage's ``progress.json`` if this launch wrote it."""
        progress = read_progress(self.pipeline.stage_dir(name))
        if progress is None or progress.get('time', 0) < self.started[name][1]:
            return None
        if progress.get('sec_per_iter') is not None and name not in self.ended:
            self.running_rates[self.config[name]] = progress['sec_per_iter']
        return progress

    def seconds_left(self, name: str, progress: Optional[dict]) -> Optional[float]:
        """A running stage's seconds to go: its own ETA as of now, else an estimate."""
        if progress is not None and progress.get('eta') is not None:
            return max(0.0, progress['eta'] - (time.time() - progress['time']))
        rate = step_time(self.config[name], self.finished_rates, self.running_rates)
        if progress is not None:
            steps = progress['max_iters'] - progress['iter']
        else:
            steps = self.steps_left[name]
        if rate is None or steps is None:
            return None
        elapsed = time.monotonic() - self.started[name][0] if progress is None else 0.0
        return max(0.0, steps * rate - elapsed)

    def eta(self, current: Dict[str, Optional[float]]) -> Optional[float]:
        """The pipeline ETA (see the module docstring), given the running stages' seconds to go."""
        pending = []
        for name in self.names:
            if name in self.started or name in self.codes:
                continue
            rate = step_time(self.config[name], self.finished_rates, self.running_rates)
            if rate is None or self.steps_left[name] is None:
                return None
            pending.append(self.steps_left[name] * rate)
        if any(v is None for v in current.values()):
            return None
        return pipeline_eta(list(current.values()), pending, self.jobs)

    def running(self) -> List[str]:
        return [n for n in self.started if n not in self.ended]

    def status(self, name: str, progress: Optional[dict]) -> str:
        """``iter 120/300 (40%), elapsed 1m05s, stage ETA 49s``; ``starting, ...`` before the
        stage wrote its progress, ``finishing, ...`` after its last step."""
        elapsed = fmt_duration(time.monotonic() - self.started[name][0])
        if name in self.codes:
            return f'extracting codes, elapsed {elapsed}'
        if progress is None:
            return f'starting, elapsed {elapsed}'
        done, total = progress['iter'], progress['max_iters']
        resumed = f', resumed at {progress["start_iter"]}' if progress.get('start_iter') else ''
        text = f'iter {done}/{total} ({100 * done // max(1, total)}%{resumed})'
        if done >= total:  # the last validation, checkpoint and export
            return f'{text}, finishing, elapsed {elapsed}'
        text += f', elapsed {elapsed}'
        if progress.get('eta') is not None:
            text += f', stage ETA {fmt_duration(self.seconds_left(name, progress))}'
        return text

    def report(self) -> None:
        """One line per running stage, each with the pipeline ETA."""
        self.last_tick = time.monotonic()
        running = self.running()
        progress = {n: self.progress(n) for n in running}
        left = {n: self.seconds_left(n, progress[n]) for n in running if n not in self.codes}
        eta = self.eta(left)
        for name in running:
            self.log(f'{self.label(name)}: {self.status(name, progress[name])}'
                     + ('' if eta is None else f', pipeline ETA ~{fmt_duration(eta)}'))

    def tick(self) -> None:
        """``report`` if ``interval`` seconds have passed since the last lines."""
        if self.interval and time.monotonic() - self.last_tick >= self.interval:
            self.report()

    def finish(self, name: str) -> None:
        """The stage's end line; its wall time per step feeds the estimates."""
        wall = time.monotonic() - self.started[name][0]
        progress = self.progress(name)
        self.ended.add(name)
        text = f'done in {fmt_duration(wall)}'
        if progress is not None:
            text += f', iter {progress["iter"]}/{progress["max_iters"]}'
            steps = progress['iter'] - progress.get('start_iter', 0)
            if steps > 0:
                self.finished_rates[self.config[name]] = wall / steps
        left = {n: self.seconds_left(n, self.progress(n)) for n in self.running()
                if n not in self.codes}
        eta = self.eta(left)
        self.log(f'{self.label(name)}: {text}'
                 + ('' if eta is None else f', pipeline ETA ~{fmt_duration(eta)}'))


class StepProgress:
    """``evaluate k/M NAME`` lines: ``start``, every ``interval`` seconds from a background thread
    while running (0: never), and ``finish`` with the elapsed time. A context manager."""

    def __init__(self, kind: str, total: int, log: Callable = log_line, interval: float = 30.0):
        self.kind, self.total, self.log, self.interval = kind, total, log, interval
        self.number, self.started = {}, {}
        self._lock, self._stop = threading.Lock(), threading.Event()

    def label(self, name: str) -> str:
        return f'[pipeline] {self.kind} {self.number[name]}/{self.total} {name}'

    def start(self, name: str, what: str) -> None:
        with self._lock:
            self.number[name] = len(self.number) + 1
            self.started[name] = time.monotonic()
        self.log(f'{self.label(name)}: {what}')

    def finish(self, name: str, what: str) -> None:
        with self._lock:
            elapsed = time.monotonic() - self.started.pop(name)
        self.log(f'{self.label(name)}: done in {fmt_duration(elapsed)}, {what}')

    def _ticker(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                lines = [f'{self.label(n)}: running, elapsed {fmt_duration(time.monotonic() - t)}'
                         for n, t in self.started.items()]
            for line in lines:
                self.log(line)

    def __enter__(self):
        if self.interval:
            self._thread = threading.Thread(target=self._ticker, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.interval:
            self._thread.join()
