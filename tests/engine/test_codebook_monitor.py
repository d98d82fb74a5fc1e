"""The codebook-collapse alarm: the shipped stage-0 config, started from a tokenizer whose codes
are all equal (a collapsed codebook: every position picks one code), warns naming the step and
the usage, or stops with ``stop_on_collapse``. (The same config from its normal start raises no alarm:
tests/tools/test_train.py.)"""
import pytest
import torch
from mmengine.config import Config

from gear.engine.hooks.codebook_monitor import CodebookCollapseError, CodebookMonitorHook
from gear.registry import MODELS
from gear.utils.checkpoint import save_weights

from ..conftest import run_tool

CONFIG = 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'
FAST = ['train_cfg.max_iters=4', 'global_batch_size=8', 'val_dataloader.dataset.num_samples=16',
        'val_dataloader.batch_size=16', 'train_cfg.val_interval=4',
        'default_hooks.checkpoint.interval=4', 'default_hooks.logger.interval=2',
        'log_processor.window_size=2', 'custom_hooks=[]']
COLLAPSE = 'codebook collapse over the last 2 steps: codebook/tokenizer/usage'


@pytest.fixture(scope='module')
def collapsed_config(tmp_path_factory, repo_root):
    """The shipped config, its tokenizer started from weights whose 256 codes are identical."""
    tmp = tmp_path_factory.mktemp('collapse')
    cfg = Config.fromfile(f'{repo_root}/{CONFIG}')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():
        codes = model.tokenizer.quantizer.embedding.weight
        codes.copy_(codes[:1].expand_as(codes))  # (K, C): every row the same
    weights = tmp / 'collapsed.pth'
    save_weights(model.state_dict(), str(weights))
    path = tmp / 'collapsed_start.py'
    path.write_text(f"_base_ = ['{repo_root}/{CONFIG}']\n"
                    f"model = dict(init_from=[dict(checkpoint='{weights}', modules=dict("
                    "tokenizer='tokenizer', tokenizer_ema='tokenizer_ema'))])\n")
    return str(path), tmp


def train(config, work_dir, *options, check=True):
    return run_tool(['tools/train.py', config, '--work-dir', str(work_dir), '--cfg-options',
                     *FAST, *options], check=check)


def test_a_collapsed_codebook_is_warned_about_with_the_step_and_usage(collapsed_config,
                                                                    fashion_mnist_root):
    config, tmp = collapsed_config
    proc = train(config, tmp / 'warn')
    log = proc.stdout + proc.stderr
    assert f'step 2: {COLLAPSE}' in log and f'step 4: {COLLAPSE}' in log
    assert 'of 256 codes used' in log
    assert (tmp / 'warn' / 'final.pth').is_file()  # a warning only: the run completes


def test_stop_on_collapse_stops_the_run_at_the_first_collapsed_window(collapsed_config,
                                                                     fashion_mnist_root):
    config, tmp = collapsed_config
    proc = train(config, tmp / 'stop', 'default_hooks.codebook_monitor.stop_on_collapse=True',
                 check=False)
    assert proc.returncode != 0
    assert 'CodebookCollapseError' in proc.stderr and f'step 2: {COLLAPSE}' in proc.stderr
    assert not (tmp / 'stop' / 'final.pth').exists()


def test_thresholds_usage_perplexity_and_bad_values():
    hook = CodebookMonitorHook(interval=5, min_usage=0.05, min_perplexity=0.1)
    hook.check(5, 'tokenizer', dict(usage=0.5, perplexity=30.0), 256)  # fine: no error
    stop = CodebookMonitorHook(interval=5, min_usage=None, min_perplexity=0.1,
                               stop_on_collapse=True)
    with pytest.raises(CodebookCollapseError, match=r'step 7: .*perplexity 20 < min_perplexity'):
        stop.check(7, 'tokenizer', dict(usage=0.9, perplexity=20.0), 256)
    with pytest.raises(ValueError, match='min_usage=2'):
        CodebookMonitorHook(min_usage=2)
