"""The sampling command lines share one set of options: the same flags with the
``SamplingSettings`` defaults in sample.py, test.py and benchmark_sampling.py, shown by --help."""
import dataclasses

import pytest

from gear.apis.cli import sampling_settings
from gear.evaluation.sampling import SamplingSettings

from .test_device_default import _parser

TOOLS = ('test.py', 'sample.py', 'benchmark_sampling.py')
FLAGS = {'--cfg-scale', '--cfg-schedule', '--cfg-interval', '--temperature', '--top-k',
         '--top-p', '--seed', '--batch-size', '--no-ema', '--no-cache', '--compile', '--device'}


@pytest.mark.parametrize('tool', TOOLS)
def test_same_flags_and_defaults_everywhere(tool):
    parser = _parser(tool)
    flags = {s for a in parser._actions for s in a.option_strings}
    assert FLAGS <= flags
    settings = sampling_settings(parser.parse_args(['x.pth']))
    assert settings == SamplingSettings()  # the dataclass defaults, whatever the tool
    fields = {f.name for f in dataclasses.fields(SamplingSettings)}
    assert fields == set(dataclasses.asdict(settings))  # every field has a flag
    text = ' '.join(parser.format_help().split())  # unwrapped
    assert f'(default: {SamplingSettings().batch_size})' in text and '(default: 0)' in text


def test_every_flag_reaches_the_settings():
    args = _parser('sample.py').parse_args(
        ['x.pth', '--cfg-scale', '2', '--cfg-schedule', 'linear', '--cfg-interval', '3',
         '--temperature', '0.5', '--top-k', '7', '--top-p', '0.9', '--seed', '11',
         '--batch-size', '6', '--no-ema', '--no-cache'])
    assert sampling_settings(args) == SamplingSettings(
        cfg_scale=2.0, cfg_schedule='linear', cfg_interval=3, temperature=0.5, top_k=7,
        top_p=0.9, seed=11, batch_size=6, use_ema=False, use_cache=False)
    assert sampling_settings(_parser('sample.py').parse_args(['x.pth', '--compile'])).compile
    with pytest.raises(SystemExit, match='--compile .* needs the cache'):
        sampling_settings(_parser('sample.py').parse_args(['x.pth', '--compile', '--no-cache']))
