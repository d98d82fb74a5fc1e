"""At the end of training, export the model as a gear weights file: ``{work_dir}/final.pth``.

The file is the unwrapped model state dict with a schema version and, as ``arch``, the model
config and the dataset configs of the run (``arch['data']``: ``train`` / ``val`` / ``test``, those
the config has; evaluation takes its images and FID reference from them), so a later stage (``init_from``), sampling or evaluation can rebuild and load it with
``weights_only=True``, without mmengine's training-state pickles. Written atomically; its
presence marks the stage complete for ``tools/pipeline.py``, so a state with a NaN or inf is
refused (``NonFiniteError`` naming the first such tensor; every rank checks, one sync) and the
stage stays incomplete.
"""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from gear.engine.nonfinite import first_nonfinite_tensor, state_error
from gear.registry import HOOKS
from gear.utils.checkpoint import save_weights

FINAL_WEIGHTS = 'final.pth'


def dataset_configs(cfg) -> dict:
    """``{'train' | 'val' | 'test': dataset config}`` of the dataloaders ``cfg`` defines."""
    out = {}
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader and loader.get('dataset'):
            dataset = loader['dataset']
            out[split] = dataset.to_dict() if hasattr(dataset, 'to_dict') else dict(dataset)
    return out


@HOOKS.register_module()
class ExportWeightsHook(Hook):
    """Write ``final.pth`` after the last step (also when a resumed run ends), if finite."""
    priority = 'LOWEST'

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = model.state_dict()
        path = osp.join(runner.work_dir, FINAL_WEIGHTS)
        found = first_nonfinite_tensor(state.items())  # on every rank: the flags are all-reduced
        if found is not None:
            raise state_error(path, runner.iter, found)
        if is_main_process():
            arch = dict(model=runner.cfg.model.to_dict(), iter=runner.iter,
                        data=dataset_configs(runner.cfg))
            save_weights(state, path, arch=arch)
