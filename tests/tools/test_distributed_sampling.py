"""tools/sample.py and tools/test.py under ``torchrun --nproc-per-node 2`` (CPU, gloo,
``TORCH_DISTRIBUTED_DEBUG=DETAIL``) give what one process gives with the same settings.

- sampling: 18 uniform-random labels in batches of 4 (5 batches, the last of 2: rank 0 samples
  batches 0, 2, 4, rank 1 batches 1, 3) -> the same ``samples.npz`` arrays, byte for byte;
- evaluation: the reference statistics (120 images: Inception batches of 100 and 20), the
  tokenizer metrics (70 images: batches of 64 and 6) and the generator metrics (110 samples:
  sampling batches of 50, 50, 10; Inception batches of 100 and 10) -> the same cached
  reference features and the same FID, precision, recall, rFID, L1, PSNR, SSIM and codebook
  usage (to 1e-6; measured: equal to the last digit).

Rank 0 alone prints and writes; progress bars (images/s) go to stderr, never stdout. The
one-process runs call ``main`` here with one torch thread, as each torchrun rank has
(``OMP_NUM_THREADS=1``): the thread count moves CPU float results on its own, sharding must not.
"""
import json

import numpy as np
import pytest
import torch

from gear.utils.checkpoint import save_weights

from ..apis.test_evaluate import TINY_DATA, stand_in_net  # noqa: F401 (fixture)
from ..apis.test_sampling import GEAR_ARCH, build_trained
from ..conftest import DISTRIBUTED_ENV, run_tool
from .test_sample import load_tool

TORCHRUN = ['-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2']
SAMPLE = ['--num-samples', '18', '--labels', 'uniform', '--batch-size', '4', '--seed', '5',
          '--cfg-scale', '1.5', '--top-k', '8', '--device', 'cpu']
EVALUATE = ['--parts', 'tokenizer', 'generator', '--num-samples', '110', '--labels', 'uniform',
            '--batch-size', '50', '--reference-images', '120', '--tokenizer-images', '70',
            '--seed', '2', '--device', 'cpu']
COMPARED = {'generator': ('fid', 'precision', 'recall', 'num_samples'),
            'tokenizer': ('rfid', 'l1', 'psnr', 'ssim', 'codebook_usage', 'codebook_perplexity',
                          'num_images')}


@pytest.fixture(scope='module')
def weights(tmp_path_factory, fashion_mnist_root) -> str:
    """A trained-looking tiny GEAR (4x4 tokens, 16 px) with the Fashion-MNIST test split as
    its dataset (as ``ExportWeightsHook`` records it), for tools/test.py."""
    path = str(tmp_path_factory.mktemp('ckpt') / 'final.pth')
    data = dict(TINY_DATA, data_root=fashion_mnist_root)
    save_weights(build_trained(GEAR_ARCH).state_dict(), path,
                 arch=dict(model=GEAR_ARCH, data=dict(train=data, test=data)))
    return path


def bars(stderr: str, name: str) -> int:
    """How many ``name`` bars were shown and ran to 100% (a bar shows 0% once, at its start)."""
    return stderr.count(f'{name}:   0%') if f'{name}: 100%' in stderr else 0


def one_thread(main, argv):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        main(argv)
    finally:
        torch.set_num_threads(threads)


def test_two_processes_sample_the_images_of_one(weights, tmp_path):
    one_thread(load_tool('sample').main, [weights, '--out', str(tmp_path / 'one'), *SAMPLE])
    proc = run_tool([*TORCHRUN, 'tools/sample.py', weights, '--out', str(tmp_path / 'two'),
                     *SAMPLE], env=DISTRIBUTED_ENV, timeout=300)
    with np.load(tmp_path / 'one' / 'samples.npz') as one, \
            np.load(tmp_path / 'two' / 'samples.npz') as two:
        assert one['arr_0'].shape == (18, 16, 16, 3) and len(set(one['arr_1'].tolist())) > 3
        assert one['arr_0'].tobytes() == two['arr_0'].tobytes()
        assert one['arr_1'].tobytes() == two['arr_1'].tobytes()
    records = [json.loads((tmp_path / run / 'sampling.json').read_text()) for run in ('one', 'two')]
    assert [r['world_size'] for r in records] == [1, 2]
    assert proc.stdout.count('[sample] 18 images') == 1 and '2 processes' in proc.stdout
    assert bars(proc.stderr, 'sample') == 1 and 'images/s]' not in proc.stdout  # rank 0 only
    assert '18/18 [' in proc.stderr and 'images/s]' in proc.stderr


def test_two_processes_evaluate_as_one(weights, stand_in_net, tmp_path):  # noqa: F811
    runs = {}
    for name in ('one', 'two'):
        runs[name] = [weights, *EVALUATE, '--inception', stand_in_net, '--out',
                      str(tmp_path / f'{name}.json'), '--reference-cache', str(tmp_path / name)]
    one_thread(load_tool('test').main, runs['one'])
    proc = run_tool([*TORCHRUN, 'tools/test.py', *runs['two']], env=DISTRIBUTED_ENV,
                    timeout=300)
    one, two = (json.loads((tmp_path / f'{name}.json').read_text()) for name in ('one', 'two'))
    assert (one['world_size'], two['world_size']) == (1, 2)
    for section, keys in COMPARED.items():
        for key in keys:
            assert two[section][key] == pytest.approx(one[section][key], rel=1e-6, abs=1e-9), \
                f'{section}/{key}'
    assert one['generator']['num_samples'] == 110 and one['tokenizer']['num_images'] == 70
    with np.load(one['reference']['file']) as a, np.load(two['reference']['file']) as b:
        assert a['features'].shape == (120, 2048)  # computed by two ranks, written by rank 0
        assert np.array_equal(a['features'], b['features'])
    assert proc.stdout.count('[test] results:') == 1
    for bar in ('reference', 'tokenizer', 'sample', 'features'):
        assert bars(proc.stderr, bar) == 1, bar
    assert 'images/s]' not in proc.stdout
