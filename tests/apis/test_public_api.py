"""``gear.apis``: load_tokenizer / load_generator / sample / evaluate, the calls users make."""
import pytest
import torch

import gear.apis as G
from gear.evaluation.sampling import SamplingSettings, sample_images
from gear.models.converters.llamagen_vq import to_llamagen_vq

from .test_sampling import GEAR_ARCH, TINY, build_trained, write_weights


@pytest.fixture(scope='module')
def gear_file(tmp_path_factory):
    model = build_trained(GEAR_ARCH)
    return model, write_weights(model, tmp_path_factory.mktemp('api') / 'final.pth', GEAR_ARCH)


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_load_tokenizer_from_a_stage_file_gives_its_ema_or_online_tokenizer(gear_file):
    model, path = gear_file
    ema = G.load_tokenizer(path)
    assert same_weights(ema, model.tokenizer_ema.module) and not ema.training
    online = G.load_tokenizer(path, use_ema=False)
    assert same_weights(online, model.tokenizer)
    assert not same_weights(ema, online)


def test_load_tokenizer_from_a_released_checkpoint_infers_the_architecture(gear_file, tmp_path):
    model, _ = gear_file
    path = tmp_path / 'vq_released.pt'
    torch.save({'model': to_llamagen_vq(model.tokenizer.state_dict())}, path)
    tokenizer = G.load_tokenizer(str(path))
    assert same_weights(tokenizer, model.tokenizer)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(tokenizer(x)[0], model.tokenizer.eval()(x)[0])


def test_load_generator_and_sample_match_the_sampling_module(gear_file, tmp_path):
    model, path = gear_file
    generator = G.load_generator(path)
    images = G.sample(generator, [0, 3, 7], seed=5, batch_size=2)
    assert images.dtype == torch.uint8 and images.shape == (3, 16, 16, 3)
    expected = sample_images(model, torch.tensor([0, 3, 7]), SamplingSettings(seed=5, batch_size=2))
    assert torch.equal(images, expected)
    assert not torch.equal(images, G.sample(generator, [0, 3, 7], seed=6, batch_size=2))


def test_load_generator_refuses_a_model_without_a_prior(tmp_path):
    from gear.registry import MODELS
    from gear.utils.checkpoint import save_weights

    from ..models.test_tokenizer_warmup import TINY as WARMUP
    path = tmp_path / 'stage0.pth'
    save_weights(MODELS.build(dict(WARMUP)).state_dict(), str(path), arch=dict(model=dict(WARMUP)))
    with pytest.raises(TypeError, match='TokenizerWarmup cannot generate'):
        G.load_generator(str(path))
    assert G.load_tokenizer(str(path)).codebook_size == TINY['tokenizer']['quantizer']['codebook_size']
