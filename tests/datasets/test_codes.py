"""``CodesDataset`` and the codes store, on codes extracted in-process from real Fashion-MNIST
images with the shipped tiny codes config: what an item holds, the view draws, and every
refusal (missing, incomplete, another dataset, another tokenizer or teacher, random pipelines)."""
import copy
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate

from gear.apis.extract_codes import (TEN_CROP_VIEWS, check_deterministic, extract_codes,
                                     model_config, views_of)
from gear.datasets import CodesDataset
from gear.datasets.codes_store import CodesError, check_model, partial_dir
from gear.engine.config_check import read_config
from gear.registry import DATASETS, MODELS
from gear.utils.checkpoint import load_weights, state_dict_sha256

from ..codes_helpers import codes_cfg, read_codes, stage_weights

N, CHUNK = 6, 4  # two chunks, the last one short


@pytest.fixture(scope='module')
def extracted(tmp_path_factory, fashion_mnist_root):
    tmp = tmp_path_factory.mktemp('codes')
    stage = stage_weights(tmp / 'stage0.pth', seed=0)
    cfg = codes_cfg(stage, tmp / 'codes', N)
    root = extract_codes(cfg, batch_size=CHUNK, device='cpu', progress=False)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, root, model.eval(), stage


def source_of(cfg) -> dict:
    return cfg.train_dataloader.dataset.source.to_dict()


def test_items_are_the_tokens_labels_and_features_of_each_view(extracted):
    cfg, root, model, _ = extracted
    images = default_collate([DATASETS.build(source_of(cfg))[i] for i in range(N)])
    x = images['img']  # (N, 3, 32, 32)
    codes = read_codes(root)
    assert codes['meta']['views'] == ['orig', 'flip'] and codes['meta']['num_chunks'] == 2
    assert codes['indices'].dtype == np.int16 and codes['indices'].shape == (N, 2, 64)
    for v, view in enumerate((x, x.flip(-1))):
        assert np.array_equal(codes['indices'][:, v], model.encode(view).numpy())
        np.testing.assert_allclose(codes['teacher/effnet'][:, v],
                                   model.teacher_maps(view)['effnet'].numpy(),
                                   rtol=1e-5, atol=1e-6)  # the map before resampling
        torch.testing.assert_close(  # finished as online: the targets of teacher(x)
            model.teachers['effnet'].targets_from_map(torch.from_numpy(codes['teacher/effnet'][:, v])),
            model.teacher_features(view)['effnet'], rtol=1e-5, atol=1e-6)
    assert np.array_equal(codes['labels'], images['label'].numpy())
    dataset = CodesDataset(root, source_of(cfg))
    item = dataset[3]
    assert item['tokens'].dtype == torch.long and item['tokens'].shape == (64,)
    assert item['teacher_maps']['effnet'].dtype == torch.float32
    assert item['teacher_maps']['effnet'].shape == (1280, 4, 4)  # 128 px / 32; the grid is 8x8
    assert torch.equal(item['tokens'], torch.from_numpy(codes['indices'][3, item['view']]).long())
    assert dataset.metainfo['classes'][0] == 'T-shirt/top'


def test_views_are_drawn_from_the_torch_rng(extracted):
    cfg, root, _, _ = extracted
    dataset = CodesDataset(root, source_of(cfg))

    def draws(seed):
        torch.manual_seed(seed)
        return [dataset[i % N]['view'] for i in range(40)]
    assert draws(0) == draws(0) and draws(0) != draws(1)
    assert set(draws(0)) == {0, 1}
    assert {CodesDataset(root, source_of(cfg), views=['flip'])[i]['view'] for i in range(N)} == {1}


def test_another_dataset_or_view_is_refused_naming_the_key(extracted):
    cfg, root, _, _ = extracted
    other = dict(source_of(cfg), num_samples=N + 1)
    with pytest.raises(CodesError, match=r'CodesDataset\.source\.num_samples: 6 vs 7'):
        CodesDataset(root, other)
    with pytest.raises(CodesError, match=r"CodesDataset\.views: \['crop_tl'\] not among"):
        CodesDataset(root, source_of(cfg), views=['crop_tl'])


def test_missing_and_incomplete_codes_say_what_to_run(extracted, tmp_path):
    cfg, root, _, _ = extracted
    with pytest.raises(CodesError, match=f'no codes at {tmp_path}/none .*extract_codes.py'):
        CodesDataset(str(tmp_path / 'none'), source_of(cfg))
    half = tmp_path / 'half'
    shutil.copytree(root, partial_dir(str(half)))  # as an interrupted extraction leaves it
    with pytest.raises(CodesError, match=r'half are incomplete: .*half\.partial holds 0 of 2 '
                                         r'chunks; rerun'):
        CodesDataset(str(half), source_of(cfg))


def test_another_tokenizer_or_teacher_is_refused_naming_both(extracted, tmp_path):
    cfg, root, model, stage = extracted
    meta = CodesDataset(root, source_of(cfg)).meta
    check_model(meta, root, model.codes_keys(), model.tokenizer_source())  # its own: fine
    model = copy.deepcopy(model)
    with torch.no_grad():  # one weight off by 1e-3: another tokenizer
        model.tokenizer.encoder.conv_in.weight.add_(1e-3)
    sha = model.codes_keys()['tokenizer_sha256']
    with pytest.raises(CodesError, match=f'stale codes: {root} .* sha256 '
                                         f'{meta["tokenizer_sha256"]} .*stage0.pth.* sha256 {sha}'):
        check_model(meta, root, model.codes_keys(), model.tokenizer_source())
    other = read_config(cfg.filename, {'model.init_from.0.checkpoint': stage,
                                       'model.teachers.effnet.image_size': 64})
    model64 = MODELS.build(other.model)
    model64.init_weights()
    with pytest.raises(CodesError, match=r'model\.teachers\.effnet has fingerprint .*'
                                         r'image_size=64.*image_size=128'):
        check_model(meta, root, model64.codes_keys(), model64.tokenizer_source())


def test_the_hash_is_of_the_loaded_weights_ema_or_live(extracted):
    cfg, _, model, stage = extracted
    state = load_weights(stage)['state_dict']
    ema = {k[len('tokenizer_ema.module.'):]: v for k, v in state.items()
           if k.startswith('tokenizer_ema.module.')}
    live = {k[len('tokenizer.'):]: v for k, v in state.items() if k.startswith('tokenizer.')}
    assert model.codes_keys()['tokenizer_sha256'] == state_dict_sha256(ema)  # the default
    no_ema = MODELS.build(model_config(cfg.model, use_ema=False))
    no_ema.init_weights()
    assert no_ema.codes_keys()['tokenizer_sha256'] == state_dict_sha256(live)
    assert state_dict_sha256(live) != state_dict_sha256(ema)


def test_existing_codes_are_kept_or_refused(extracted, tmp_path):
    cfg, root, _, stage = extracted
    before = osp.getmtime(osp.join(root, 'indices.npy'))
    assert extract_codes(cfg, batch_size=CHUNK, device='cpu', progress=False) == root
    assert osp.getmtime(osp.join(root, 'indices.npy')) == before  # complete: nothing redone
    other = codes_cfg(stage_weights(tmp_path / 'other.pth', seed=7), root, N)
    with pytest.raises(CodesError, match=r'holds other codes \(tokenizer_sha256: '):
        extract_codes(other, batch_size=CHUNK, device='cpu', progress=False)


def test_ten_crop_views(extracted, tmp_path):
    cfg, _, model, stage = extracted
    one = codes_cfg(stage, tmp_path / 'ten', 1)
    codes = read_codes(extract_codes(one, ten_crop=True, device='cpu', progress=False))
    assert codes['meta']['views'] == TEN_CROP_VIEWS
    assert codes['meta']['ten_crop'] == dict(crop_range=1.1, crop_size=35)
    assert codes['indices'].shape == (1, 10, 64)
    big = DATASETS.build(dict(source_of(one), resolution=35))[0]['img'][None]  # (1, 3, 35, 35)
    crops = views_of(big, codes['meta']['ten_crop'], 32)  # 28 px padded to 35, then cropped
    assert torch.equal(crops[1], big[..., 0:32, 3:35])  # top right
    assert torch.equal(crops[4], big[..., 2:34, 2:34])  # the centre
    assert torch.equal(crops[9], big[..., 2:34, 2:34].flip(-1))
    for v in (1, 9):
        assert np.array_equal(codes['indices'][:, v], model.encode(crops[v]).numpy())


def test_a_random_pipeline_is_refused_naming_the_step():
    imagenet = read_config('configs/_base_/datasets/imagenet.py')
    with pytest.raises(CodesError, match=r"train_dataloader\.dataset\.pipeline\[2\]\.type: "
                                         r"'RandomCrop' draws random numbers"):
        check_deterministic(imagenet.train_dataloader.dataset.to_dict(), 'train_dataloader.dataset')
    check_deterministic(imagenet.val_dataloader.dataset.to_dict(), 'val_dataloader.dataset')
