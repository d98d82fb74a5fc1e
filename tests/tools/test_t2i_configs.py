"""The text-to-image configs: the GPU reference recipe passes the config check, and a text
encoder that does not fit the AR fails naming both keys."""
import pytest
import torch
from mmengine.config import Config

from gear.engine.config_check import check_config
from gear.models.ar.llamagen_gpt import LlamaGenGPT
from gear.models.conditioning import build_text_encoder

from ..conftest import REPO

GPU = ['configs/ar/ar_vq_1b_gpic_t2i.py', 'configs/ar/baseline_vq_1b_gpic_t2i.py']


@pytest.mark.parametrize('config', GPU)
def test_the_gpic_recipe_passes_the_config_check(config):
    cfg = Config.fromfile(f'{REPO}/{config}')
    check_config(cfg)
    ar = cfg.model.prior.ar
    assert ar.cls_token_num == cfg.model.text_encoder.max_length == 300
    assert ar.caption_dim == 2048 and (ar.n_layer, ar.n_head, ar.dim) == (36, 20, 1440)


class _Prior(torch.nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.ar = LlamaGenGPT(dim=32, n_layer=1, n_head=2, vocab_size=16, block_size=16,
                              ffn_multiple_of=16, **kw)


def test_a_text_encoder_that_does_not_fit_names_the_keys(t2i_data):
    enc = dict(type='HFTextEncoder', path=t2i_data['encoder'], max_length=16)
    with pytest.raises(ValueError, match='caption_dim 64'):
        build_text_encoder(enc, _Prior(caption_dim=64, cls_token_num=16))
    with pytest.raises(ValueError, match='max_length 16 != model.prior.ar.cls_token_num 8'):
        build_text_encoder(enc, _Prior(caption_dim=32, cls_token_num=8))
    with pytest.raises(ValueError, match='needs model.text_encoder'):
        build_text_encoder(None, _Prior(caption_dim=32, cls_token_num=16))
    with pytest.raises(ValueError, match='caption_dim is None'):
        build_text_encoder(enc, _Prior())
    prior = _Prior(caption_dim=32, cls_token_num=16, null_caption='empty')
    encoder = build_text_encoder(enc, prior)  # the null caption is the encoder's ""
    emb, mask = encoder([''])
    assert torch.equal(prior.ar.cls_embedding.null_emb, emb[0])
    assert torch.equal(prior.ar.cls_embedding.null_mask, mask[0]) and mask[0].sum() == 1  # </s>
