"""tools/sample.py and tools/benchmark_sampling.py end to end on a tiny GEAR weights file.

One run as a user would (a subprocess); the others call ``main`` in this process (faster).
"""
import dataclasses
import hashlib
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from gear.evaluation.sampling import SamplingSettings

from ..apis.test_sampling import GEAR_ARCH, build_trained, write_weights
from ..conftest import REPO, run_tool


def load_tool(name: str):
    """Import ``tools/{name}.py`` as a module, to call its ``main`` in this process."""
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def weights(tmp_path_factory) -> str:
    return write_weights(build_trained(GEAR_ARCH), tmp_path_factory.mktemp('ckpt') / 'final.pth',
                         GEAR_ARCH)


def test_sample_writes_npz_grid_and_every_setting(weights, tmp_path):
    out = tmp_path / 'samples'
    run_tool(['tools/sample.py', weights, '--out', str(out), '--num-samples', '12',
              '--batch-size', '8', '--cfg-scale', '1.5', '--cfg-schedule', 'linear',
              '--temperature', '0.9', '--top-k', '8', '--top-p', '0.95', '--seed', '3',
              '--cfg-interval', '2', '--device', 'cpu'])
    with np.load(out / 'samples.npz') as f:
        assert f['arr_0'].shape == (12, 16, 16, 3) and f['arr_0'].dtype == np.uint8
        assert f['arr_1'].tolist() == [i % 10 for i in range(12)]
    assert Image.open(out / 'grid.png').size == (10 * 18 + 2, 2 * 18 + 2)  # 10 per row, pad 2
    record = json.loads((out / 'sampling.json').read_text())
    expect = dict(cfg_scale=1.5, cfg_schedule='linear', temperature=0.9, top_k=8, top_p=0.95,
                  seed=3, batch_size=8, use_ema=True, use_cache=True, cfg_interval=2,
                  compile=False)
    assert set(expect) == {f.name for f in dataclasses.fields(SamplingSettings)}
    assert {k: record[k] for k in expect} == expect
    with open(weights, 'rb') as f:
        assert record['checkpoint_sha256'] == hashlib.sha256(f.read()).hexdigest()[:16]
    assert record['checkpoint'] == weights and record['num_samples'] == 12
    assert record['per_class'] is None and record['label_mode'] == 'cycle'
    assert record['wall_time_s'] > 0 and record['device'] == 'cpu'


def test_sample_defaults_beside_the_checkpoint_per_class(weights):
    load_tool('sample').main([weights, '--per-class', '1', '--no-ema', '--no-cache',
                              '--device', 'cpu'])
    tag = SamplingSettings(use_ema=False, use_cache=False).tag()
    out = osp.join(osp.dirname(weights), f'samples_{tag}')
    with np.load(osp.join(out, 'samples.npz')) as f:
        assert f['arr_1'].tolist() == list(range(10)) and f['arr_0'].shape[0] == 10
    with open(osp.join(out, 'sampling.json')) as f:
        record = json.load(f)
    assert record['use_ema'] is False and record['use_cache'] is False and record['per_class'] == 1


def test_sample_fails_naming_the_missing_checkpoint(tmp_path):
    with pytest.raises(SystemExit, match=r'cannot sample from .*nope\.pth: .*not found'):
        load_tool('sample').main([str(tmp_path / 'nope.pth'), '--device', 'cpu'])


def test_benchmark_writes_both_modes(weights, tmp_path):
    out = tmp_path / 'bench.json'
    load_tool('benchmark_sampling').main([weights, '--num-images', '4', '--batch-size', '4',
                                          '--repeats', '1', '--cfg-scale', '2', '--device', 'cpu',
                                          '--out', str(out)])
    bench = json.loads(out.read_text())
    assert bench['identical_tokens'] is True and bench['identical_images'] == 1.0
    assert bench['speedup'] > 0 and 'use_cache' not in bench['settings']
    assert bench['cache']['images_per_s'] > 0 and bench['no_cache']['images_per_s'] > 0
    assert {'device', 'torch_threads', 'ar_params', 'tokenizer_params'} <= set(bench)
