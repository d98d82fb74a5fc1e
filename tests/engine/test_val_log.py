"""Validation metrics are logged as that validation's value, with gear's log_processor setting.

mmengine's LogProcessor applies ``mean_pattern`` to validation keys too (their 'val/' removed), so a
pattern that matches 'loss' anywhere made 'val/loss_ntp' the mean of the last ``window_size``
validations: a curve that lags the model and never shows its plateau."""
import json
import uuid
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import gear.evaluation  # noqa: F401  (registers MeanMetric)

RUNTIME = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'default_runtime.py'
LOG_PROCESSOR = Config.fromfile(str(RUNTIME)).log_processor.to_dict()  # as shipped
ITERS = 6


class Shrinking(BaseModel):
    """A loss that falls every step; validation reports it under gear's AR metric names."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(4.0))
        self.validated = []  # the exact value of each validation, in order
        self.trained = []  # the loss of each training step, in order

    def train_step(self, data, optim_wrapper):
        with optim_wrapper.optim_context(self):
            loss = self.w ** 2
            optim_wrapper.update_params(loss)
        self.trained.append(float(loss.detach()))
        return {'prior/loss_ntp': loss.detach()}

    def val_step(self, data):
        value = float(self.w.detach() ** 2)
        self.validated.append(value)
        return [dict(loss_ntp=value, **{'cos/effnet': -value})]  # per image, as FrozenTokenizerAR

    def forward(self, *args, **kwargs):
        raise NotImplementedError('train_step / val_step only')


def test_validation_metrics_are_the_latest_validation_not_a_window_mean(tmp_path):
    name = f'vallog-{uuid.uuid4().hex[:8]}'
    model = Shrinking()
    data = DataLoader(TensorDataset(torch.zeros(ITERS, 1)), batch_size=1)
    runner = Runner(
        model=model, work_dir=str(tmp_path / name), experiment_name=name, default_scope='gear',
        train_dataloader=data, val_dataloader=DataLoader(TensorDataset(torch.zeros(1, 1))),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=ITERS, val_interval=1),
        val_cfg=dict(type='ValLoop'), val_evaluator=dict(type='MeanMetric'),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
                           checkpoint=None),
        log_processor=LOG_PROCESSOR,
        visualizer=dict(type='Visualizer', name=name, vis_backends=[dict(type='LocalVisBackend')]))
    runner.train()
    rows = [json.loads(line) for line in
            next(Path(runner.log_dir).rglob('scalars.json')).read_text().splitlines()]
    val = [row for row in rows if 'val/loss_ntp' in row]
    assert [row['step'] for row in val] == list(range(1, ITERS + 1))
    assert len(model.validated) == ITERS and model.validated == sorted(model.validated, reverse=True)
    assert [row['val/loss_ntp'] for row in val] == pytest.approx(model.validated, rel=1e-6)
    assert [row['val/cos/effnet'] for row in val] == pytest.approx([-v for v in model.validated])
    window = LOG_PROCESSOR['window_size']  # training keys: still means over the window
    train = [row for row in rows if 'prior/loss_ntp' in row]
    assert [row['step'] for row in train] == list(range(1, ITERS + 1))
    for row in train:
        seen = model.trained[max(0, row['step'] - window):row['step']]
        assert row['prior/loss_ntp'] == pytest.approx(sum(seen) / len(seen), rel=1e-6)
