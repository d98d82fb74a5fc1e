"""Run the validation loop once before the first training step, so every curve has a step-0
point (e.g. reconstruction quality of the initial tokenizer). Skipped when resuming."""
from mmengine.hooks import Hook

from gear.registry import HOOKS


@HOOKS.register_module()
class ValidateAtStartHook(Hook):
    """Validate at step 0 (not when resuming past it)."""
    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        if runner.iter == 0 and runner.val_loop is not None:
            runner.val_loop.run()
