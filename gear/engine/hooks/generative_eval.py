"""FID during training: every ``interval`` steps (and after the last), sample with the EMA prior
and log ``val/fid``, ``val/precision``, ``val/recall`` (and ``val/inception_score`` where the
network has logits) to the message hub and the visualizer backends (``scalars.json``).

Computed on the main process only (``distributed=False``: the other ranks keep training, no
sharding, no progress bar); the global RNG state is restored afterwards, so training
with and without the hook draws the same random numbers.
"""
from typing import Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from gear.registry import DATASETS, HOOKS

SCALARS = ('fid', 'precision', 'recall', 'inception_score')


@HOOKS.register_module()
class GenerativeEvalHook(Hook):
    """Generation metrics of the EMA prior during training.

    Args:
        interval (int): steps between evaluations.
        per_class (int, optional): samples per class (default 10 when ``num_samples`` is None).
        num_samples (int, optional): samples in all, cycling through the classes.
        reference (dict, optional): DATASETS config of the real images (default: the run's
            ``val_dataloader.dataset`` without its ``num_samples`` cap).
        reference_images (int): real images of the reference statistics (cached).
        cache_dir (str): where reference statistics are cached.
        settings (dict, optional): ``SamplingSettings`` fields (default: EMA, seed 0, no CFG).
        inception (dict, optional): ``InceptionFeatures`` kwargs (``weights``,
            ``resize_filter``); a missing network disables the hook with a warning.
        fid_method (str): 'auto', 'features' or 'sqrtm' (see ``evaluate_generator``).
        prefix (str): scalar name prefix.
        at_end (bool): also evaluate after the last step.
    """
    priority = 'LOW'

    def __init__(self, interval: int = 1000, per_class: Optional[int] = None,
                 num_samples: Optional[int] = None, reference: Optional[dict] = None,
                 reference_images: int = 1000, cache_dir: str = 'work_dirs/fid_cache',
                 settings: Optional[dict] = None, inception: Optional[dict] = None,
                 fid_method: str = 'auto', prefix: str = 'val', at_end: bool = True):
        from gear.evaluation.sampling import SamplingSettings
        self.interval, self.num_samples, self.at_end = interval, num_samples, at_end
        self.per_class = per_class if per_class is not None or num_samples else 10
        self.reference_cfg, self.reference_images = reference, reference_images
        self.cache_dir, self.fid_method, self.prefix = cache_dir, fid_method, prefix
        self.settings = SamplingSettings(**(settings or {}))
        self.inception_cfg = dict(inception or {})
        self.inception = self.reference = None
        self.disabled, self.last_step = False, -1

    def _setup(self, runner) -> bool:
        """Build the network and the reference once; False (with a warning) if impossible."""
        if self.disabled or self.reference is not None:
            return not self.disabled
        from gear.evaluation.protocol import build_inception, dataset_reference
        inception_cfg = dict(self.inception_cfg)
        self.inception, error = build_inception(inception_cfg.pop('weights', None),
                                                **inception_cfg)
        if self.inception is None:
            runner.logger.warning(f'GenerativeEvalHook disabled: {error}')
            self.disabled = True
            return False
        cfg = self.reference_cfg or runner.cfg.val_dataloader.dataset
        cfg = dict(cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg)
        dataset = DATASETS.build(dict(cfg, num_samples=None) if 'num_samples' in cfg else cfg)
        self.reference = dataset_reference(dataset, self.reference_images, self.inception,
                                           self.cache_dir, progress=False, distributed=False)
        runner.logger.info(f'GenerativeEvalHook: reference {self.reference["info"]["file"]}')
        return True

    def evaluate(self, runner, step: int) -> Optional[dict]:
        """Sample, compute and log the metrics at ``step``; the results dict (None if skipped)."""
        if step == self.last_step or not is_main_process() or self.disabled:
            return None
        from gear.evaluation.protocol import evaluate_generator
        from gear.evaluation.feature_analysis import evaluation_parts
        from gear.evaluation.sampling import make_labels
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        device = next(model.parameters()).device
        devices = [device] if device.type == 'cuda' else []
        with torch.random.fork_rng(devices=devices):  # training's RNG stream is untouched
            if not self._setup(runner):  # (data loaders draw seeds from the global RNG)
                return None
            num_classes = evaluation_parts(model, self.settings.use_ema)[1].ar.num_classes
            labels = make_labels(num_classes, 'balanced' if self.per_class else 'cycle',
                                 self.per_class, self.num_samples)  # (N,)
            results = evaluate_generator(model, self.settings, self.reference, self.inception,
                                         labels, device, self.fid_method, progress=False,
                                         distributed=False)
        self.last_step = step
        scalars = {f'{self.prefix}/{k}': float(results[k]) for k in SCALARS if k in results}
        for key, value in scalars.items():
            runner.message_hub.update_scalar(key, value)
        runner.visualizer.add_scalars(scalars, step=step)
        runner.logger.info(f'Generative eval at step {step} ({results["num_samples"]} samples, '
                           f'{results["fid_method"]} FID): ' +
                           ', '.join(f'{k} {v:.4f}' for k, v in scalars.items()))
        return results

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            self.evaluate(runner, runner.iter + 1)

    def after_train(self, runner) -> None:
        if self.at_end:
            self.evaluate(runner, runner.iter)
