"""Every evaluation and benchmark command line picks the device itself: a GPU when one is seen."""
import importlib.util
import os.path as osp

import pytest
import torch

from ..conftest import REPO

TOOLS = ('test.py', 'sample.py', 'benchmark.py', 'benchmark_sampling.py')


def _parser(tool: str):
    spec = importlib.util.spec_from_file_location(f'tool_{tool[:-3]}', osp.join(REPO, 'tools', tool))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


@pytest.mark.parametrize('tool', TOOLS)
@pytest.mark.parametrize('gpu', [False, True])
def test_device_defaults_to_the_gpu_when_one_is_visible(tool, gpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: gpu)
    parser = _parser(tool)
    device = next(a for a in parser._actions if '--device' in a.option_strings)
    assert device.default == ('cuda' if gpu else 'cpu')
    assert 'default' in device.help  # --help says what it picks
