"""No silent FID reference: ``tools/test.py`` compares with ``--reference`` (a dataset config, an
image folder or an ADM ``.npz``), the config's dataset or the checkpoint's recorded one, and
otherwise refuses naming what to give; ``--protocol adm50k`` samples uniform labels and writes
the ADM ``.npz``. A stand-in FID network keeps it fast."""
import copy
import json

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from gear.apis.reference import NoReferenceError, resolve_real_data
from gear.evaluation import feature_statistics, frechet_distance_from_features
from gear.evaluation.inception import InceptionFeatures
from gear.evaluation.sampling import make_labels
from gear.registry import DATASETS, MODELS
from gear.utils.checkpoint import save_weights

from ..conftest import REPO
from ..models.test_gear_invariants import TINY_GEAR
from ..tools.test_test_tool import FAST, tool_main
from .test_evaluate import TINY_DATA, stand_in_net, tiny_weights  # noqa: F401 (fixtures)


@pytest.fixture(scope='module')
def bare_weights(tmp_path_factory) -> str:
    """A weights file that records its model but no dataset (converted or older files)."""
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('bare') / 'final.pth')
    save_weights(MODELS.build(copy.deepcopy(TINY_GEAR)).state_dict(), path,
                 arch=dict(model=TINY_GEAR))
    return path


def test_weights_without_a_dataset_are_refused(bare_weights, capsys):
    with pytest.raises(SystemExit, match=r'records no dataset.*--reference DATASET_CONFIG.py.*'
                       r'--reference IMAGE_FOLDER.*VIRTUAL_imagenet256_labeled.npz'):
        tool_main()([bare_weights, *FAST])


def test_imagenet_recipe_weights_name_the_missing_images(tmp_path):
    """Weights trained on the ImageNet recipe record its dataset; where it is not on disk the
    error names the folder and what to give instead (never another dataset's images)."""
    imagenet = Config.fromfile(f'{REPO}/configs/_base_/datasets/imagenet.py')
    val = dict(imagenet.val_dataloader.dataset.to_dict(), data_root=str(tmp_path / 'imagenet'))
    path = str(tmp_path / 'final.pth')
    save_weights(MODELS.build(copy.deepcopy(TINY_GEAR)).state_dict(), path,
                 arch=dict(model=TINY_GEAR, data=dict(val=val)))
    with pytest.raises(SystemExit, match=rf'{tmp_path}/imagenet/val does not exist.*'
                       r'--reference DATASET_CONFIG.py'):
        tool_main()([path, *FAST])


def test_reference_kinds(bare_weights, tmp_path, fashion_mnist_root):
    folder = tmp_path / 'images'
    folder.mkdir()
    Image.new('RGB', (16, 16)).save(folder / 'a.png')
    real = resolve_real_data(bare_weights, str(folder), resolution=16)
    assert real.dataset == dict(type='ImageFolder', data_root=str(folder), resolution=16,
                                label_from='none') and real.source == 'reference'
    config = tmp_path / 'data.py'
    config.write_text(f'test_dataloader = dict(dataset={dict(TINY_DATA, data_root="x")!r})\n')
    assert resolve_real_data(bare_weights, str(config)).dataset['data_root'] == 'x'
    config.write_text(f'dataset = {dict(TINY_DATA, data_root="y")!r}\n')
    assert resolve_real_data(bare_weights, str(config)).dataset['data_root'] == 'y'
    with pytest.raises(NoReferenceError, match=r'--reference nowhere: not a dataset config'):
        resolve_real_data(bare_weights, 'nowhere')
    with pytest.raises(NoReferenceError, match=r'missing.npz not found'):
        resolve_real_data(bare_weights, str(tmp_path / 'missing.npz'))
    given = dict(TINY_DATA, data_root=fashion_mnist_root)  # CONFIG's dataset wins over nothing
    assert resolve_real_data(bare_weights, dataset=given).source == 'dataset'


def test_adm_npz_reference_and_the_adm50k_protocol(tiny_weights, stand_in_net,  # noqa: F811
                                                   fashion_mnist_root, tmp_path):
    """An ADM-layout reference batch: FID against the file's mu / sigma, precision / recall
    against the network's features of its images; adm50k labels are uniform at random from
    the seed and the samples are written for the ADM evaluator."""
    data = DATASETS.build(dict(TINY_DATA, data_root=fashion_mnist_root))
    x = torch.stack([data[i]['img'] for i in range(40)])  # (40, 3, 16, 16) in [-1, 1]
    images = ((x + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    net = InceptionFeatures(stand_in_net)
    feats = net(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1)  # (40, D)
    mu, sigma = feature_statistics(feats)
    mu = mu + 0.5  # the file's statistics, not recomputed ones, are the reference
    npz = tmp_path / 'VIRTUAL_tiny_labeled.npz'
    np.savez(npz, arr_0=images, mu=mu, sigma=sigma)
    out = tmp_path / 'r.json'
    tool_main()([tiny_weights, '--protocol', 'adm50k', '--num-samples', '12', '--reference',
                 str(npz), '--parts', 'generator', '--inception', stand_in_net, '--batch-size',
                 '5', '--seed', '4', '--cfg-scale', '1.5', '--cfg-interval', '3',
                 '--reference-cache', str(tmp_path / 'cache'), '--out', str(out)])
    r = json.loads(out.read_text())
    gen = r['generator']
    assert r['protocol'] == 'adm50k' and r['label_mode'] == 'uniform'
    assert r['settings']['sampling']['cfg_interval'] == 3
    assert gen['fid_method'] == 'stats_features'  # the file's mu / sigma, fast below D samples
    assert r['reference']['kind'] == 'adm_npz' and r['reference']['num_images'] == 40
    with np.load(gen['samples_npz']) as f:
        samples, labels = f['arr_0'], f['arr_1']
    assert samples.shape == (12, 16, 16, 3) and samples.dtype == np.uint8
    assert labels.tolist() == make_labels(10, 'uniform', num_samples=12, seed=4).tolist()
    fake = net(torch.from_numpy(samples).permute(0, 3, 1, 2).float() / 127.5 - 1)
    # sigma is the covariance of feats and mu their mean + 0.5: the Gaussian of feats + 0.5
    assert gen['fid'] == pytest.approx(frechet_distance_from_features(feats + 0.5, fake),
                                       rel=1e-6)
    assert 0 <= gen['precision'] <= 1 and 'precision' not in r['unavailable']
