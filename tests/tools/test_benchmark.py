"""tools/benchmark.py on the tiny stage-1 (GEAR) and stage-2 (AR on a frozen tokenizer) configs,
on the CPU: the JSON it writes, FLOPs, and per-phase times adding up to the step time."""
import json

import pytest

from ..conftest import run_tool

CASES = {
    'configs/gear/gear_vq_tiny_fashionmnist.py': ('stage1', {'tokenizer', 'discriminator',
                                                             'prior'}),
    'configs/ar/ar_vq_tiny_fashionmnist_vqonly.py': ('stage2', {'prior'}),
}
FIELDS = ('config', 'stage', 'device', 'batch_size', 'image_size', 'step_time_s',
          'images_per_s', 'phase_time_s', 'flops_per_step', 'flops_per_image', 'flops_method',
          'flops_per_phase', 'ar_formula_flops_per_step', 'achieved_tflops', 'mfu',
          'peak_memory_bytes', 'memory_kind', 'optim_wrappers')


@pytest.mark.parametrize('config', sorted(CASES))
def test_benchmark_json(tmp_path, config):
    out = tmp_path / 'bench.json'
    proc = run_tool(['tools/benchmark.py', config, '--warmup', '1', '--iters', '2',
                     '--batch-size', '4', '--device', 'cpu', '--peak-tflops', '1.0',
                     '--out', str(out)])
    assert '[benchmark]' in proc.stdout
    rec = json.loads(out.read_text())
    stage, phases = CASES[config]
    assert all(k in rec for k in FIELDS), [k for k in FIELDS if k not in rec]
    assert rec['stage'] == stage and rec['batch_size'] == 4 and rec['image_size'] == 32
    assert rec['memory_kind'] == 'cpu_peak_rss_process' and rec['peak_memory_bytes'] > 2**20
    # times: the named phases ran, and with 'other' they add up to the step time
    assert set(rec['phase_time_s']) == phases | {'other'}
    assert all(rec['phase_time_s'][p] > 0 for p in phases)
    assert sum(rec['phase_time_s'][p] for p in phases) <= rec['step_time_s'] * 1.001
    assert sum(rec['phase_time_s'].values()) == pytest.approx(rec['step_time_s'], rel=0.01)
    assert len(rec['step_times_s']) == 2
    assert rec['images_per_s'] == pytest.approx(4 / rec['step_time_s'])
    # FLOPs: counted over the step, split over the phases; the AR formula is a lower bound of
    # the prior phase (which adds the projector)
    assert rec['flops_per_step'] > 0
    assert all(rec['flops_per_phase'][p] > 0 for p in phases)
    assert sum(rec['flops_per_phase'].values()) == rec['flops_per_step']
    assert rec['flops_per_image'] == pytest.approx(rec['flops_per_step'] / 4)
    assert rec['mfu'] == pytest.approx(rec['achieved_tflops'] / 1.0)
    if stage == 'stage2':  # the prior phase is the hard branch only: formula x 3
        assert rec['flops_per_phase']['prior'] >= 0.98 * rec['ar_formula_flops_per_step']
    assert set(rec['optim_wrappers'].values()) == {'GearOptimWrapper'}  # grad norms deferred


def test_benchmark_options_reach_the_model(tmp_path):
    """bf16, fused AdamW and activation checkpointing are applied and recorded; the FLOP count
    (model FLOPs) is the same as without recomputation."""
    out = tmp_path / 'bench.json'
    run_tool(['tools/benchmark.py', 'configs/ar/ar_vq_tiny_fashionmnist_vqonly.py',
              '--warmup', '0', '--iters', '1', '--batch-size', '2', '--device', 'cpu',
              '--amp', 'bf16', '--fused-adamw', '--grad-checkpointing', '--out', str(out),
              '--cfg-options', 'model.lambda_ar=0.25'])
    rec = json.loads(out.read_text())
    assert rec['optim_wrappers'] == {'prior': 'GearAmpOptimWrapper'}
    assert rec['optimizers'] == {'prior': 'FusedAdamW'}
    assert rec['grad_checkpointing'] and rec['amp'] == 'bf16' and rec['mfu'] is None
    assert rec['flops_per_phase']['prior'] >= 0.98 * rec['ar_formula_flops_per_step']


def test_benchmark_rejects_bad_arguments(tmp_path):
    proc = run_tool(['tools/benchmark.py', 'configs/nope.py'], check=False)
    assert proc.returncode != 0 and 'config file not found: configs/nope.py' in proc.stderr
    proc = run_tool(['tools/benchmark.py', 'configs/ar/ar_vq_tiny_fashionmnist_vqonly.py',
                     '--iters', '0'], check=False)
    assert proc.returncode != 0 and '--iters must be >= 1' in proc.stderr
