"""tools/benchmark.py on the tiny stage-1 (GEAR) and stage-2 (AR on a frozen tokenizer) configs,
on the CPU: the JSON it writes, the prior phase's FLOPs against a hand count of its layers, and
the times' relations (phases within the step, images/s of the step times)."""
import json
import time

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


def prior_phase_flops_by_hand(batch: int) -> int:
    """FLOPs of one prior phase (AR + REPA projector, forward and backward) of the tiny configs,
    counted layer by layer (2 FLOPs per multiply-add).

    configs/_base_/models/ar_tiny.py: 4 blocks of width d = 128 over S = 1 class token + 63 image
    tokens, SwiGLU width 384, a 256-way head on all S positions; the stage configs: a REPA
    projector 128 -> 256 -> 256 -> 1280 (EfficientNet-Lite0's features) on the 64 positions of
    block 2's output. A matmul's backward costs twice its forward (input and weight gradients);
    the fused attention backward 2.5 times (torch's counter: QK^T recomputed, dV, dP, dQ, dK)."""
    S, d, h, V, blocks, tokens = 64, 128, 384, 256, 4, 64
    linear = 2 * S * (d * 3 * d + d * d + 2 * d * h + h * d)  # wqkv, wo, w1 and w3, w2
    attention = 2 * S * S * d + 2 * S * S * d  # QK^T, AV (the full S x S, as counted)
    head = 2 * S * d * V
    projector = 2 * tokens * (d * 256 + 256 * 256 + 256 * 1280)
    return batch * (3 * (blocks * linear + head + projector) + 7 * blocks * attention // 2)


@pytest.mark.parametrize('config', sorted(CASES))
def test_benchmark_json(tmp_path, config):
    out = tmp_path / 'bench.json'
    start = time.perf_counter()
    proc = run_tool(['tools/benchmark.py', config, '--warmup', '1', '--iters', '2',
                     '--batch-size', '4', '--device', 'cpu', '--peak-tflops', '1.0',
                     '--out', str(out)])
    wall = time.perf_counter() - start
    assert '[benchmark]' in proc.stdout
    rec = json.loads(out.read_text())
    stage, phases = CASES[config]
    assert all(k in rec for k in FIELDS), [k for k in FIELDS if k not in rec]
    assert rec['stage'] == stage and rec['batch_size'] == 4 and rec['image_size'] == 32
    assert rec['memory_kind'] == 'cpu_peak_rss_process' and rec['peak_memory_bytes'] > 2**20
    # times: two timed steps, within the process's own wall time; the mean and the median
    # among them, images/s their reciprocals times the batch
    times = rec['step_times_s']
    assert len(times) == 2 and sum(times) < wall
    assert min(times) <= rec['step_time_s'] <= max(times)
    assert rec['step_time_median_s'] in times
    assert rec['images_per_s'] * rec['step_time_s'] == pytest.approx(4)
    assert rec['images_per_s_median'] * rec['step_time_median_s'] == pytest.approx(4)
    # the named phases ran inside the step; 'other' is the rest of it
    assert set(rec['phase_time_s']) == phases | {'other'}
    assert all(rec['phase_time_s'][p] > 0 for p in phases)
    assert sum(rec['phase_time_s'][p] for p in phases) <= rec['step_time_s'] * 1.001
    assert rec['phase_time_s']['other'] >= 0
    # FLOPs: the prior phase is exactly its layers' hand count; the step holds every phase
    assert set(rec['flops_per_phase']) == phases | {'other'}
    assert rec['flops_per_phase']['prior'] == prior_phase_flops_by_hand(4)
    assert all(rec['flops_per_phase'][p] > 0 for p in phases)
    assert sum(rec['flops_per_phase'].values()) == rec['flops_per_step']
    assert rec['flops_per_image'] * 4 == pytest.approx(rec['flops_per_step'])
    assert rec['achieved_tflops'] * 1e12 * rec['step_time_s'] == pytest.approx(
        rec['flops_per_step'])
    assert rec['mfu'] == pytest.approx(rec['achieved_tflops'])  # --peak-tflops 1.0
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


def test_the_peer_sampling_benchmark_names_a_wrong_checkout(tmp_path):
    """tools/benchmark_sampling_peer.py reads LlamaGen from the checkout the user names; a folder
    that is not one is an error naming the file it looked for."""
    import importlib.util
    import os.path as osp

    from ..conftest import REPO
    spec = importlib.util.spec_from_file_location(
        'bench_peer', osp.join(REPO, 'tools', 'benchmark_sampling_peer.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit, match=r'no autoregressive/models/gpt.py'):
        module.main(['--peer-dir', str(tmp_path)])


def test_benchmark_from_codes_times_both_paths(tmp_path):
    """``--codes``: the stage-2 step on the images and on their codes (encoded once), the same
    number of timed steps each, in the JSON; a config of another stage is refused."""
    out = tmp_path / 'bench.json'
    proc = run_tool(['tools/benchmark.py', 'configs/ar/baseline_vq_tiny_fashionmnist.py',
                     '--codes', '--warmup', '1', '--iters', '2', '--batch-size', '4',
                     '--device', 'cpu', '--out', str(out)])
    assert '[benchmark] from codes:' in proc.stdout
    codes = json.loads(out.read_text())['codes']
    assert [len(codes['step_times_s'][k]) for k in ('online', 'codes')] == [2, 2]
    for k in ('online', 'codes'):
        assert codes['images_per_s_median'][k] * codes['step_time_median_s'][k] == \
            pytest.approx(4)
    assert codes['speedup_median'] == pytest.approx(
        codes['step_time_median_s']['online'] / codes['step_time_median_s']['codes'])
    bad = run_tool(['tools/benchmark.py', 'configs/gear/gear_vq_tiny_fashionmnist.py', '--codes',
                    '--out', str(tmp_path / 'x.json')], check=False)
    assert bad.returncode != 0 and 'trains GEAR' in bad.stderr
