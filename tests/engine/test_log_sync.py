"""LogSyncHook + GearOptimWrapper: the logged numbers are the window means of the per-step
values (losses and per-group grad norms), with no host sync on the steps that do not log."""
import json
import uuid
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.data import DataLoader, TensorDataset

import gear.engine  # noqa: F401  (registers the hook and the wrappers)
from gear.engine.optimizers import FusedAdamW, fused_unsupported_reason

RUNTIME = Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'default_runtime.py'
MEAN_PATTERN = Config.fromfile(str(RUNTIME)).log_processor['mean_pattern']  # gear's setting
SYNCS = ('item', 'tolist', '__float__', '__int__', '__bool__')
INTERVAL, ITERS = 3, 7  # logs after steps 3, 6 and 7 (the end of the 7-batch epoch)


class TwoGroups(BaseModel):
    """Two optimizer groups stepped separately, named and logged as GEAR's phases (the log
    processor's pattern matches those names); records what it returns."""

    def __init__(self):
        super().__init__()
        self.tokenizer = nn.Linear(2, 1, bias=False)
        self.discriminator = nn.Linear(2, 1, bias=False)
        self.returned = []  # per step: {key: detached copy}, read only after training

    def train_step(self, data, optim_wrapper):
        x = data[0]  # (1, 2)
        logs = {}
        for name in ('tokenizer', 'discriminator'):
            with optim_wrapper[name].optim_context(self):
                loss = getattr(self, name)(x).sum()  # d loss / d w = x: grad norm = ||x||
                optim_wrapper[name].update_params(loss)
            logs[f'{name}/loss'] = loss.detach()
        logs['prior/ratio'] = (logs['tokenizer/loss'] / (logs['discriminator/loss'].abs() + 1)).detach()
        self.returned.append({k: v.clone() for k, v in logs.items()})
        return logs

    def forward(self, *args, **kwargs):
        raise NotImplementedError('training only')


class SyncCounter(TorchFunctionMode):
    """Records every tensor -> Python conversion (a host sync on a GPU) with the step it ran in."""

    def __init__(self):
        super().__init__()
        self.step, self.calls = -1, []  # -1: set-up (e.g. the DataLoader draws its seed)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, '__name__', '') in SYNCS:
            self.calls.append((self.step, func.__name__))
        return func(*args, **(kwargs or {}))


class StepMarker(Hook):
    """Tells the counter which step runs: from ``before_train_iter`` (its last hook) on."""
    priority = 'LOWEST'

    def __init__(self, counter):
        self.counter = counter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.counter.step = runner.iter


def train(tmp_path, deferred: bool):
    torch.manual_seed(0)
    data = torch.randn(ITERS, 2) * torch.arange(1, ITERS + 1)[:, None]  # distinct norms
    name = f'logsync-{uuid.uuid4().hex[:8]}'
    group = dict(type='GearOptimWrapper' if deferred else 'OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.01), clip_grad=dict(max_norm=1e6))
    hooks = dict(logger=dict(type='LoggerHook', interval=INTERVAL, log_metric_by_epoch=False,
                             ignore_last=False),
                 checkpoint=None)
    if deferred:
        hooks['log_sync'] = dict(type='LogSyncHook')
    model = TwoGroups()
    runner = Runner(
        model=model, work_dir=str(tmp_path / name), experiment_name=name, default_scope='gear',
        train_dataloader=DataLoader(TensorDataset(data), batch_size=1),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=ITERS),
        optim_wrapper=dict(constructor='ModuleOptimWrapperConstructor', tokenizer=group,
                           discriminator=group),
        default_hooks=hooks, log_processor=dict(by_epoch=False, window_size=INTERVAL,
                                                mean_pattern=MEAN_PATTERN),
        visualizer=dict(type='Visualizer', name=name,
                        vis_backends=[dict(type='LocalVisBackend')]))
    counter = SyncCounter()
    runner.register_hook(StepMarker(counter))
    with counter:
        runner.train()
    logged = [json.loads(line) for line in
              next(Path(runner.log_dir).rglob('scalars.json')).read_text().splitlines()]
    per_step = [{k: float(v) for k, v in row.items()} for row in model.returned]
    norms = data.norm(dim=1).tolist()
    return runner, logged, per_step, norms, counter.calls


def window_mean(values, end):
    """LogProcessor's window: the mean of the last ``window_size`` values up to step ``end``."""
    window = values[max(0, end - INTERVAL):end]
    return sum(window) / len(window)


def test_logged_values_are_window_means_without_per_step_syncs(tmp_path):
    runner, logged, per_step, norms, calls = train(tmp_path, deferred=True)
    assert [row['step'] for row in logged] == [3, 6, 7]
    for row in logged:
        for key in ('tokenizer/loss', 'discriminator/loss', 'prior/ratio'):
            want = window_mean([s[key] for s in per_step], row['step'])
            assert row[key] == pytest.approx(want, rel=1e-6), (row['step'], key)
        for group in ('tokenizer', 'discriminator'):  # per-group grad norms, ||x|| of each step
            assert row[f'grad_norm/{group}'] == pytest.approx(
                window_mean(norms, row['step']), rel=1e-5)
        assert 'grad_norm' not in row
    hist = runner.message_hub.get_scalar('train/tokenizer/loss').data[0]
    assert hist.tolist() == pytest.approx([s['tokenizer/loss'] for s in per_step])  # full history
    log_steps = {2, 5, 6}  # 0-based steps whose LoggerHook logs
    calls = [c for c in calls if c[0] >= 0]  # training steps, not set-up
    assert calls and {step for step, _ in calls} <= log_steps, calls
    per_window = [sum(1 for s, f in calls if s == step and f == 'tolist') for step in log_steps]
    assert per_window == [1, 1, 1]  # one stacked fetch per window (one device)


def test_without_the_hook_every_step_syncs_and_numbers_agree(tmp_path):
    """The baseline the hook replaces: mmengine syncs each value every step; same log lines."""
    _, logged_ref, per_step_ref, _, calls = train(tmp_path, deferred=False)
    assert {step for step, _ in calls if step >= 0} == set(range(ITERS))
    assert sum(1 for s, _ in calls if s == 0) >= 5  # 3 outputs + 2 grad norms
    _, logged, _, _, _ = train(tmp_path, deferred=True)
    for ref, row in zip(logged_ref, logged):
        for key in ('tokenizer/loss', 'discriminator/loss', 'prior/ratio'):
            assert row[key] == pytest.approx(ref[key], rel=1e-6)
    assert 'grad_norm' in logged_ref[0]  # both groups into one key without the hook


def test_fused_adamw_uses_fused_kernel_where_supported():
    p = nn.Parameter(torch.randn(4))
    if fused_unsupported_reason([p]) is None:
        assert FusedAdamW([p], lr=1e-3).defaults['fused'] is True
    meta = nn.Parameter(torch.empty(4, device='meta'))
    assert 'meta' in fused_unsupported_reason([p, meta])
    opt = FusedAdamW([dict(params=iter([meta]), lr=1e-3)])  # falls back, says why
    assert opt.defaults['foreach'] is True and not opt.fused_kernel
    with pytest.raises(TypeError, match='fused'):
        FusedAdamW([p], fused=False)
