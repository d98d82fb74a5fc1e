"""``init_from``: a stage's start from earlier weights, applied once by ``init_weights``."""
import copy

import pytest
import torch

from gear.models.converters.llamagen_vq import to_llamagen_vq
from gear.registry import MODELS
from gear.utils.checkpoint import CheckpointError

from .test_tokenizer_warmup import TINY


def released_vq(tmp_path, seed=1):
    """A LlamaGen-format bundle (``{'model': ...}``, ``quantize.`` keys) of a tiny tokenizer."""
    torch.manual_seed(seed)
    tokenizer = MODELS.build(copy.deepcopy(TINY)).tokenizer
    path = tmp_path / 'vq_released.pt'
    torch.save({'model': to_llamagen_vq(tokenizer.state_dict())}, path)
    return tokenizer, str(path)


def test_released_tokenizer_loads_and_the_ema_starts_from_it(tmp_path):
    source, path = released_vq(tmp_path)
    torch.manual_seed(0)
    model = MODELS.build(dict(TINY, init_from=[dict(checkpoint=path, modules=dict(tokenizer='tokenizer'))]))
    assert not torch.equal(model.tokenizer.encoder.conv_in.weight, source.encoder.conv_in.weight)
    model.init_weights()
    for name, value in source.state_dict().items():
        assert torch.equal(model.tokenizer.state_dict()[name], value), name
        assert torch.equal(model.tokenizer_ema.module.state_dict()[name], value), name


def test_init_from_runs_once_and_not_when_skipped(tmp_path):
    source, path = released_vq(tmp_path)
    cfg = dict(TINY, init_from=[dict(checkpoint=path, modules=dict(tokenizer='tokenizer'))])
    model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    with torch.no_grad():
        model.tokenizer.encoder.conv_in.weight.zero_()  # as if trained after starting
    model.init_weights()  # the runner calls it again: the loaded weights are not reloaded
    assert not model.tokenizer.encoder.conv_in.weight.any()
    model = MODELS.build(copy.deepcopy(cfg))
    model.skip_init_from('resumed')
    model.init_weights()
    assert not torch.equal(model.tokenizer.encoder.conv_in.weight, source.encoder.conv_in.weight)


@pytest.mark.parametrize('init_from, error, match', [
    (dict(checkpoint='a.pth', modules=dict(tokenizer='tokenizer')), TypeError, 'must be a list'),
    ([dict(checkpoint='a.pth', modules=dict(tokenizer='tokenizer'), prefix='x')], KeyError,
     r"init_from\[0\] has unknown key.*prefix"),
    ([dict(checkpoint='a.pth')], ValueError, r'init_from\[0\]\.modules'),
    ([dict(checkpoint='a.pth', modules='tokenizer')], ValueError, r'init_from\[0\]\.modules'),
    ([dict(checkpoint='a.pth', modules='tokenizer:tokenizer,prior')], ValueError,
     r"init_from\[0\]\.modules: write 'src:dst"),
    ([dict(checkpoint=None, modules=dict(tokenizer='tokenizer'))], ValueError,
     r'init_from\[0\]\.checkpoint'),
])
def test_bad_init_from_names_the_entry_and_key(init_from, error, match):
    with pytest.raises(error, match=match):
        MODELS.build(dict(TINY, init_from=init_from))


def test_unknown_destination_and_bundle_key_name_the_problem(tmp_path):
    _, path = released_vq(tmp_path)
    model = MODELS.build(dict(TINY, init_from=[dict(checkpoint=path, modules=dict(tokenizer='tokeniser'))]))
    with pytest.raises(CheckpointError, match="no module 'tokeniser'"):
        model.init_weights()
    model = MODELS.build(dict(TINY, init_from=[dict(checkpoint=path, key='ema',
                                                    modules=dict(tokenizer='tokenizer'))]))
    with pytest.raises(CheckpointError, match="no key 'ema'"):
        model.init_weights()


def test_command_line_form_of_modules(tmp_path):
    source, path = released_vq(tmp_path)
    model = MODELS.build(dict(TINY, init_from=[dict(checkpoint=path, modules='tokenizer:tokenizer')]))
    assert model.init_from[0]['modules'] == {'tokenizer': 'tokenizer'}
    model.init_weights()
    assert torch.equal(model.tokenizer.encoder.conv_in.weight, source.encoder.conv_in.weight)


def test_command_line_overrides_of_an_entry_are_checked():
    from gear.engine.config_check import ConfigError, read_config
    cfg = read_config('configs/ar/baseline_vq_l_imagenet.py', {
        'model.init_from.0.checkpoint': 'vq-with-gan.pt', 'model.init_from.0.key': 'vq_ema',
        'model.init_from.0.modules': 'tokenizer:tokenizer'})
    assert cfg.model.init_from[0] == dict(checkpoint='vq-with-gan.pt', key='vq_ema',
                                          modules='tokenizer:tokenizer')
    with pytest.raises(ConfigError, match=r"did you mean 'model.init_from.0.key'"):
        read_config('configs/ar/baseline_vq_l_imagenet.py', {'model.init_from.0.keys': 'vq_ema'})
