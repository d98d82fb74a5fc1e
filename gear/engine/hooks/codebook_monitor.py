"""Log codebook usage, perplexity and entropy of every ``CodeUsageMeter`` in the model."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from gear.models.code_usage import CodeUsageMeter
from gear.registry import HOOKS


@HOOKS.register_module()
class CodebookMonitorHook(Hook):
    """Every ``interval`` steps, summarise (over the window and all ranks) and log as
    ``train/codebook/{meter}/usage|perplexity|entropy``.

    Args:
        interval (int): steps per window; match the logger interval.
    """
    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) so the values are logged this step

    def __init__(self, interval: int = 50):
        self.interval = interval

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not self.every_n_train_iters(runner, self.interval):
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        for meter in model.modules():
            if isinstance(meter, CodeUsageMeter):
                for key, value in meter.summarize(reset=True).items():
                    runner.message_hub.update_scalar(f'train/codebook/{meter.name}/{key}', value)
