"""Inception Score and sFID where the network allows them: a FID network file that returns
``(features, logits, spatial)`` gives both, from a dataset reference (spatial statistics cached
beside the features) and from an ADM reference batch's ``mu_s`` / ``sigma_s``; the numbers are
recomputed here from the network's outputs. A stand-in network keeps it fast."""
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gear.apis.loading import load_model
from gear.evaluation import feature_statistics, frechet_distance_from_features, inception_score
from gear.evaluation.inception import InceptionFeatures
from gear.evaluation.sampling import SamplingSettings, make_labels, sample_images
from gear.registry import DATASETS

from ..apis.test_evaluate import TINY_DATA, tiny_weights  # noqa: F401 (fixture)
from ..tools.test_test_tool import tool_main


class StandInWithHeads(nn.Module):
    """Pooled pixels -> 2048 features, 10 logits and (7, 17, 17) spatial features."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(48, 2048)
        self.head = nn.Linear(48, 10)
        self.conv = nn.Conv2d(3, 7, 3, padding=1)

    def forward(self, x):
        pooled = F.adaptive_avg_pool2d(x, 4).flatten(1)  # (B, 48)
        spatial = F.adaptive_avg_pool2d(self.conv(x), 17)  # (B, 7, 17, 17)
        return self.proj(pooled), self.head(pooled) * 4, spatial


@pytest.fixture(scope='module')
def heads_net(tmp_path_factory) -> str:
    torch.manual_seed(1)
    path = str(tmp_path_factory.mktemp('net') / 'with_heads.pt')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        torch.jit.save(torch.jit.script(StandInWithHeads()), path)
    return path


def test_is_and_sfid_from_a_dataset_and_from_an_adm_batch(tiny_weights, heads_net,  # noqa: F811
                                                          fashion_mnist_root, tmp_path):
    net = InceptionFeatures(heads_net)
    assert net.has_logits and net.has_spatial
    data = DATASETS.build(dict(TINY_DATA, data_root=fashion_mnist_root))
    real = net.extract(torch.stack([data[i]['img'] for i in range(30)]))  # the reference's
    labels = make_labels(10, 'balanced', per_class=1)
    images = sample_images(load_model(tiny_weights), labels,
                           SamplingSettings(batch_size=5, seed=2), progress=False)
    fake = net.extract(images.permute(0, 3, 1, 2).float() / 127.5 - 1)  # what test.py sees
    common = ['--per-class', '1', '--parts', 'generator', '--inception', heads_net,
              '--batch-size', '5', '--seed', '2', '--reference-cache', str(tmp_path / 'cache'),
              '--no-progress']
    tool_main()([tiny_weights, '--reference-images', '30', '--out', str(tmp_path / 'a.json'),
                 *common])
    gen = json.loads((tmp_path / 'a.json').read_text())['generator']
    assert gen['sfid'] == pytest.approx(
        frechet_distance_from_features(real['spatial'], fake['spatial']), rel=1e-6)
    assert gen['inception_score'] == pytest.approx(inception_score(fake['logits']), rel=1e-9)
    assert 'unavailable' not in gen
    # an ADM batch: sFID against its mu_s / sigma_s (shifted: the file's, not recomputed)
    mu, sigma = feature_statistics(real['features'])
    mu_s, sigma_s = feature_statistics(real['spatial'])
    uint8 = np.zeros((4, 16, 16, 3), np.uint8)  # arr_0: any images (precision / recall)
    np.savez(tmp_path / 'ref.npz', arr_0=uint8, mu=mu, sigma=sigma, mu_s=mu_s + 0.25,
             sigma_s=sigma_s)
    tool_main()([tiny_weights, '--reference', str(tmp_path / 'ref.npz'),
                 '--out', str(tmp_path / 'b.json'), *common])
    adm = json.loads((tmp_path / 'b.json').read_text())['generator']
    assert adm['sfid'] == pytest.approx(
        frechet_distance_from_features(real['spatial'] + 0.25, fake['spatial']), rel=1e-6)
    assert adm['fid'] == pytest.approx(gen['fid'], rel=1e-6)  # the same statistics
