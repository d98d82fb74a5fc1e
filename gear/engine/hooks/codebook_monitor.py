"""Log codebook usage, perplexity and entropy of every ``CodeUsageMeter`` in the model."""
from typing import Optional

from mmengine.hooks import Hook, LoggerHook
from mmengine.model import is_model_wrapper

from gear.models.code_usage import CodeUsageMeter
from gear.registry import HOOKS


@HOOKS.register_module()
class CodebookMonitorHook(Hook):
    """Every ``interval`` steps, summarise (over the window and all ranks) and log as
    ``train/codebook/{meter}/usage|perplexity|entropy``.

    Args:
        interval (int, optional): steps per window; None (default) = the LoggerHook's interval,
            so every log line has a fresh window.
    """
    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) so the values are logged this step

    def __init__(self, interval: Optional[int] = None):
        self.interval = interval

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
                for key, value in meter.summarize(reset=True).items():
                    runner.message_hub.update_scalar(f'train/codebook/{meter.name}/{key}', value)
