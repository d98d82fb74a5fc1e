"""gear.apis.evaluate: the results of a checkpoint record every setting that moves the numbers;
a metric whose network is missing is reported unavailable with the reason, the rest still runs;
reference statistics are cached by everything they depend on."""
import copy
import hashlib
import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gear.apis.evaluate import (build_inception, dataset_reference, evaluate_checkpoint,
                                evaluate_tokenizer, first_images, write_results)
from gear.apis.loading import load_model
from gear.evaluation.llamagen_metrics import RECON_PROTOCOL
from gear.evaluation.sampling import SamplingSettings, class_balanced_labels, sample_images
from gear.registry import DATASETS, MODELS
from gear.utils.checkpoint import save_weights
from gear.version import __version__

from ..evaluation.test_fid import frechet_by_hand, precision_recall_by_hand
from ..models.test_gear_invariants import TINY_GEAR

TINY_DATA = dict(type='FashionMNIST', split='test', resolution=16)  # TINY_GEAR: 16 px, 8x8 tokens
FAST = dict(per_class=1, reference_images=20, tokenizer_images=8, analysis_images=8,
            sampling=dict(batch_size=5, seed=3))


class StandIn(nn.Module):
    """A fast stand-in FID network: 4x4-pooled pixels -> 2048 features (no logits)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(48, 2048)

    def forward(self, x):
        return self.proj(F.adaptive_avg_pool2d(x, 4).flatten(1))  # (B, 2048)


def generator_by_hand(model, seed, inception, real):
    """FID (written out) and precision / recall (k = 3) of one sample per class, drawn in
    batches of 5 with ``seed``, against the real features (N, D)."""
    images = sample_images(model, class_balanced_labels(10, 1),
                           SamplingSettings(batch_size=5, seed=seed))  # (10, H, W, 3) uint8
    fake = inception(images.permute(0, 3, 1, 2).float() / 127.5 - 1)  # (10, D)
    real = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    return frechet_by_hand(real, fake), precision_recall_by_hand(real, fake, k=3)


def sha16(path) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


@pytest.fixture(scope='session')
def stand_in_net(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('net') / 'stand_in.pt')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # torch.jit deprecation notices
        torch.jit.save(torch.jit.script(StandIn()), path)
    return path


@pytest.fixture(scope='session')
def tiny_weights(tmp_path_factory, fashion_mnist_root) -> str:
    """A tiny (untrained) GEAR model saved as a weights file with its arch and, as
    ``ExportWeightsHook`` records them, the dataset configs it was trained on."""
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(TINY_GEAR))
    path = str(tmp_path_factory.mktemp('ckpt') / 'final.pth')
    data = {split: dict(TINY_DATA, data_root=fashion_mnist_root, split=split, num_samples=64)
            for split in ('train', 'test')}
    save_weights(model.state_dict(), path, arch=dict(model=TINY_GEAR, data=data))
    return path


@pytest.fixture(scope='module')
def evaluated(tiny_weights, stand_in_net, fashion_mnist_root, tmp_path_factory):
    cache = str(tmp_path_factory.mktemp('fid_cache'))
    kw = dict(FAST, dataset=dict(TINY_DATA, data_root=fashion_mnist_root), cache_dir=cache,
              inception_weights=stand_in_net)
    return evaluate_checkpoint(tiny_weights, **kw), cache


def test_results_record_every_setting_and_metric(evaluated, tiny_weights, stand_in_net, tmp_path,
                                                 fashion_mnist_root):
    results, _ = evaluated
    path = tmp_path / 'results.json'
    write_results(str(path), results)
    r = json.loads(path.read_text())
    assert r['checkpoint']['path'] == tiny_weights
    assert r['checkpoint']['sha256'] == sha16(tiny_weights)
    assert r['use_ema'] is True and r['gear_version'] == __version__ and r['date'].startswith('20')
    assert {'cfg_scale', 'cfg_schedule', 'temperature', 'top_k', 'top_p',
            'seed'} <= set(r['sampling'])
    assert r['sampling']['seed'] == 3 and r['num_samples'] == 10 and r['per_class'] == 1
    assert r['resize_filter'] == 'bilinear'
    assert r['inception']['sha256'] == sha16(stand_in_net) == r['inception']['feature_network']
    ref = r['reference']
    assert ref['sha256'] == sha16(ref['file']) and ref['key']['num_images'] == 20
    assert ref['key']['feature_network'][:16] == sha16(stand_in_net)
    gen = r['generator']
    assert gen['num_samples'] == 10 and gen['fid_method'] == 'features'
    # the numbers: the reference file holds the stand-in's features of the first 20 images, and
    # FID / precision / recall are those of the seed-3 samples against them
    inception = build_inception(stand_in_net)[0]
    data = DATASETS.build(dict(TINY_DATA, data_root=fashion_mnist_root))
    real = np.load(ref['file'])['features']  # (20, 2048)
    first = torch.stack([data[i]['img'] for i in range(20)]).float()  # (20, 3, 16, 16)
    assert np.allclose(real, inception(first).numpy(), rtol=1e-5, atol=1e-5)
    fid, (precision, recall) = generator_by_hand(load_model(tiny_weights), 3, inception, real)
    assert gen['fid'] == pytest.approx(fid, rel=1e-6)
    assert (gen['precision'], gen['recall']) == pytest.approx((precision, recall), abs=1e-9)
    assert gen['settings'] == r['sampling'] and gen['reference']['file'] == ref['file']
    tok = r['tokenizer']
    for key in ('l1', 'psnr', 'ssim', 'psnr_float', 'ssim_gaussian11', 'codebook_usage',
                'codebook_perplexity', 'codebook_entropy', 'rfid'):
        assert math.isfinite(tok[key]), key
    assert tok['recon_protocol'] == RECON_PROTOCOL  # psnr / ssim: LlamaGen's, named as such
    assert 'LlamaGen' in tok['recon_protocol']['ssim']
    assert tok['num_images'] == 8 and tok['reference']['first_images'] == 8
    assert tok['reference']['file'] == ref['file']  # the first 8 of the FID reference
    teacher = r['feature_alignment']['teachers']['effnet']
    assert set(teacher) == {'cka_tokenizer', 'cka_ar', 'projector_cosine'}
    # the stand-in network has no logits: IS is unavailable, and says why
    assert 'logits' in r['unavailable']['generator/inception_score']
    assert 'no spatial features' in r['unavailable']['generator/sfid']  # nor sFID
    assert set(r['unavailable']) == {'generator/inception_score', 'generator/sfid'}


def test_reference_cache_and_rfid_from_it(evaluated, tiny_weights, stand_in_net,
                                          fashion_mnist_root):
    results, cache = evaluated
    model = load_model(tiny_weights)
    inception, error = build_inception(stand_in_net)
    assert error is None
    data = DATASETS.build(dict(TINY_DATA, data_root=fashion_mnist_root))
    assert results['reference']['cached'] is False  # computed, then cached
    again = dataset_reference(data, 20, inception, cache)
    assert again['info']['cached'] and again['info']['file'] == results['reference']['file']
    own = dataset_reference(data, 8, inception, cache)  # another count: another file
    assert own['info']['file'] != again['info']['file'] and not own['info']['cached']
    # rFID of the 8 tokenizer images: real features computed here, from their own cached
    # reference, or the first 8 of the 20-image reference (what evaluate_checkpoint used)
    direct = evaluate_tokenizer(model, data, inception, None, max_images=8, batch_size=3)
    for ref in (own, first_images(again, 8)):
        cached = evaluate_tokenizer(model, data, inception, ref, max_images=8)
        assert cached['rfid'] == pytest.approx(direct['rfid'], rel=1e-6)  # cache: float32
        assert cached['psnr'] == pytest.approx(direct['psnr'], rel=1e-6)
    assert results['tokenizer']['rfid'] == pytest.approx(direct['rfid'], rel=1e-6)


def test_missing_inception_is_unavailable_not_fatal(tiny_weights, fashion_mnist_root, tmp_path):
    missing = str(tmp_path / 'no_such_inception.pt')
    r = evaluate_checkpoint(tiny_weights, dataset=dict(TINY_DATA, data_root=fashion_mnist_root),
                            cache_dir=str(tmp_path / 'cache'), inception_weights=missing, **FAST)
    for metric in ('generator/fid', 'generator/precision', 'generator/recall',
                   'generator/inception_score', 'tokenizer/rfid'):
        assert missing in r['unavailable'][metric], metric
    assert 'fid' not in r['generator'] and r['reference'] is None
    assert missing in r['inception']['unavailable']
    assert math.isfinite(r['tokenizer']['psnr']) and 'effnet' in r['feature_alignment']['teachers']


def test_tokenizer_only_model_reports_what_it_cannot_do(stand_in_net, fashion_mnist_root,
                                                        tmp_path):
    cfg = dict(type='TokenizerWarmup', tokenizer=TINY_GEAR['tokenizer'],
               discriminator=TINY_GEAR['discriminator'], recon_loss=dict(type='L1Loss'),
               gan_loss=dict(type='GANLoss'))
    path = str(tmp_path / 'tokenizer.pth')
    save_weights(MODELS.build(copy.deepcopy(cfg)).state_dict(), path, arch=dict(model=cfg))
    r = evaluate_checkpoint(path, dataset=dict(TINY_DATA, data_root=fashion_mnist_root),
                            cache_dir=str(tmp_path / 'cache'), inception_weights=stand_in_net,
                            **FAST)
    assert 'no AR prior' in r['unavailable']['generator']
    assert 'feature_alignment' in r['unavailable'] and math.isfinite(r['tokenizer']['rfid'])


def test_generative_eval_hook_logs_fid_and_keeps_the_rng(tiny_weights, stand_in_net,
                                                         fashion_mnist_root, tmp_path):
    from types import SimpleNamespace

    from mmengine.logging import MessageHub, MMLogger

    from gear.engine.hooks.generative_eval import GenerativeEvalHook
    hook = GenerativeEvalHook(interval=2, per_class=1, reference_images=20,
                              reference=dict(TINY_DATA, data_root=fashion_mnist_root),
                              cache_dir=str(tmp_path), settings=dict(batch_size=5),
                              inception=dict(weights=stand_in_net))
    logged = []
    runner = SimpleNamespace(
        model=load_model(tiny_weights).train(), iter=0, cfg=None,
        message_hub=MessageHub.get_instance('gear-generative-eval-test'),
        visualizer=SimpleNamespace(add_scalars=lambda d, step: logged.append((step, d))),
        logger=MMLogger.get_instance('gear-generative-eval-test'))
    rng = torch.random.get_rng_state()
    hook.after_train_iter(runner, 0)  # step 1: not an evaluation step
    assert logged == []
    runner.iter = 1
    hook.after_train_iter(runner, 1)  # step 2
    assert torch.equal(torch.random.get_rng_state(), rng) and runner.model.training
    (step, scalars), = logged
    assert step == 2 and set(scalars) == {'val/fid', 'val/precision', 'val/recall'}
    assert runner.message_hub.get_scalar('val/fid').current() == scalars['val/fid']
    # the values: the hook's seed-0 samples against its 20-image reference, written out
    fid, (precision, recall) = generator_by_hand(runner.model, 0, hook.inception,
                                                 hook.reference['stats'].features)
    assert scalars['val/fid'] == pytest.approx(fid, rel=1e-6)
    assert (scalars['val/precision'], scalars['val/recall']) == pytest.approx(
        (precision, recall), abs=1e-9)
    runner.iter = 2
    hook.after_train(runner)  # the last step was just evaluated: not again
    assert len(logged) == 1
    runner.iter = 3
    hook.after_train(runner)
    assert [s for s, _ in logged] == [2, 3] and logged[1][1]['val/fid'] == scalars['val/fid']
    missing = GenerativeEvalHook(inception=dict(weights=str(tmp_path / 'none.pt')))
    assert missing.evaluate(runner, 5) is None and missing.disabled
