"""``CodesCheckHook`` (``default_hooks.codes_check``): a run that reads pre-extracted codes
(``CodesDataset``) starts only if they are this model's.

When training starts, after the weights are loaded (``init_from``, ``--resume`` or
``load_from``), each dataloader of the run whose dataset is a ``CodesDataset`` is compared with
the model (``FrozenTokenizerAR.codes_keys``): the sha256 of the tokenizer's weights and each
teacher's fingerprint against those in the codes' ``meta.json``. Codes of another tokenizer
(stale codes: the earlier stage was retrained, ``init_from`` points elsewhere) are a
``ConfigError`` naming both hashes, the codes directory and where the tokenizer came from. A
run without codes is not touched.
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from gear.datasets.codes import CodesDataset
from gear.datasets.codes_store import CodesError, check_model
from gear.registry import HOOKS

from ..config_check import ConfigError


@HOOKS.register_module()
class CodesCheckHook(Hook):
    """Refuse codes extracted with another tokenizer or other teachers than the model's."""
    priority = 'VERY_HIGH'  # before ValidateAtStartHook runs a validation on them

    def before_train(self, runner) -> None:
        loaders = [('train_dataloader', runner.train_dataloader)]
        if runner.val_loop is not None:
            loaders.append(('val_dataloader', runner.val_loop.dataloader))
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        for name, loader in loaders:
            dataset = getattr(loader, 'dataset', None)
            if not isinstance(dataset, CodesDataset):
                continue
            if not hasattr(model, 'codes_keys'):
                raise ConfigError(f'{name}.dataset: {type(model).__name__} cannot train from '
                                  'codes (CodesDataset feeds FrozenTokenizerAR)')
            try:  # the frozen tokenizer and teachers are never sharded (ZeRO-3 included)
                check_model(dataset.meta, dataset.root, model.codes_keys(),
                            model.tokenizer_source())
            except CodesError as e:
                raise ConfigError(f'{name}.dataset.root: {e}') from None
