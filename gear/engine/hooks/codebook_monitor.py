"""Log codebook usage, perplexity and entropy of every ``CodeUsageMeter`` in the model, and
raise the alarm when a codebook collapses.

Every ``interval`` steps (the log window) each meter's histogram is summed over the window and
all ranks (one all-reduce, one host sync: the window's only one) and logged as
``train/codebook/{meter}/usage|perplexity|entropy``. A window whose usage (the fraction of the
K codes emitted at least once) falls below ``min_usage``, or whose perplexity falls below
``min_perplexity * K``, is a collapse: a warning names the step, the scalar and the threshold;
with ``stop_on_collapse=True`` the run stops there with ``CodebookCollapseError`` (every rank
sees the same all-reduced histogram, so every rank stops at the same step).

The defaults fit every shipped recipe: the tiny tokenizers use 88-100 % of their codes
(docs/results.md) and the released ImageNet ones report high usage (LlamaGen VQ-16: 97 %), while the straight-through ablation (``GEAREndToEnd``) falls to one code (usage 0.004)
within about 80 stage-1 steps; ``min_usage=0.05`` is also the study's "collapsed" mark.
"""
from typing import Optional

from mmengine.hooks import Hook, LoggerHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from gear.models.code_usage import CodeUsageMeter
from gear.registry import HOOKS


class CodebookCollapseError(RuntimeError):
    """The codebook usage or perplexity fell below its threshold and ``stop_on_collapse`` is set."""


@HOOKS.register_module()
class CodebookMonitorHook(Hook):
    """Log each meter's window statistics; warn (or stop) when a codebook collapses.

    Args:
        interval (int, optional): steps per window; None (default) = the LoggerHook's interval,
            so every log line has a fresh window.
        min_usage (float, optional): a window using fewer than this fraction of the codes is a
            collapse (default 0.05); None: not checked.
        min_perplexity (float, optional): a window whose perplexity is below this fraction of
            the codebook size is a collapse; None (default): not checked.
        stop_on_collapse (bool): stop the run at a collapse instead of warning (default False).
    """
    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) so the values are logged this step

    def __init__(self, interval: Optional[int] = None, min_usage: Optional[float] = 0.05,
                 min_perplexity: Optional[float] = None, stop_on_collapse: bool = False):
        for name, value in (('min_usage', min_usage), ('min_perplexity', min_perplexity)):
            if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ValueError(f'CodebookMonitorHook: {name}={value!r}; give a fraction of '
                                 'the codebook in [0, 1], or None to not check it')
        self.interval = interval
        self.min_usage, self.min_perplexity = min_usage, min_perplexity
        self.stop_on_collapse = bool(stop_on_collapse)

    def before_train(self, runner) -> None:
        if self.interval is None:
            loggers = [h for h in runner.hooks if isinstance(h, LoggerHook)]
            self.interval = loggers[0].interval if loggers else 50

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not self.every_n_train_iters(runner, self.interval):
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        for meter in model.modules():
            if isinstance(meter, CodeUsageMeter):
                size = meter.counts.numel()
                stats = meter.summarize(reset=True)
                for key, value in stats.items():
                    runner.message_hub.update_scalar(f'train/codebook/{meter.name}/{key}', value)
                self.check(runner.iter + 1, meter.name, stats, size)

    def check(self, step: int, name: str, stats: dict, codebook_size: int) -> None:
        """Warn, or raise ``CodebookCollapseError``, if ``stats`` (one window of meter ``name``,
        a codebook of ``codebook_size`` codes) is below a threshold."""
        found = []
        if self.min_usage is not None and stats['usage'] < self.min_usage:
            used = round(stats['usage'] * codebook_size)
            found.append(f'codebook/{name}/usage {stats["usage"]:.4g} < min_usage '
                         f'{self.min_usage} ({used} of {codebook_size} codes used)')
        if self.min_perplexity is not None and \
                stats['perplexity'] < self.min_perplexity * codebook_size:
            found.append(f'codebook/{name}/perplexity {stats["perplexity"]:.4g} < min_perplexity '
                         f'{self.min_perplexity} x {codebook_size} codes')
        if not found:
            return
        message = (f'step {step}: codebook collapse over the last {self.interval} steps: '
                   f'{"; ".join(found)}')
        if self.stop_on_collapse:
            raise CodebookCollapseError(
                f'{message}. Stopping (default_hooks.codebook_monitor.stop_on_collapse=True); '
                f'the checkpoints in the work dir are from before step {step}')
        print_log(f'{message} (default_hooks.codebook_monitor.stop_on_collapse=True stops the '
                  'run here)', logger='current', level=30)
