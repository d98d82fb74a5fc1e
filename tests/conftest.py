"""Shared test fixtures: paths to the repo, the golden reference fixtures, and real data.

Golden tests (any test that uses ``golden_dir``) are marked ``golden``; a golden test that skips
is reported as a failure: the fixtures ship in tests/data/reference/, so a skip there means a
golden comparison silently stopped running."""
import glob
import json
import os
import os.path as osp
import pathlib
import subprocess
import sys

import pytest
from mmengine.registry import DefaultScope

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
GOLDEN = pathlib.Path(REPO) / 'tests' / 'data' / 'reference'  # README.md there
FASHION_MNIST = '/usr/share/datasets/fashion-mnist'

# As inside a runner built from a gear config (default_scope = 'gear'): mmengine builders
# called by name (build_optim_wrapper, ...) resolve gear's registries first.
DefaultScope.get_instance('gear-tests', scope_name='gear')


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO


@pytest.fixture(scope='session')
def golden_dir() -> pathlib.Path:
    """tests/data/reference/: the golden tensors of the released architectures."""
    if not GOLDEN.is_dir():
        pytest.skip(f'{GOLDEN} (the golden fixtures) is missing')
    return GOLDEN


def golden_file(golden_dir: pathlib.Path, name: str) -> pathlib.Path:
    """``golden_dir / name``; skips (a failure, for a golden test) when it is missing."""
    path = golden_dir / name
    if not path.is_file():
        pytest.skip(f'golden fixture not found: {path}')
    return path


def pytest_configure(config):
    config.addinivalue_line('markers', 'golden: compares with tests/data/reference/; a skip '
                                       'of a golden test is reported as a failure')


def pytest_collection_modifyitems(config, items):
    for item in items:
        if 'golden_dir' in getattr(item, 'fixturenames', ()):
            item.add_marker(pytest.mark.golden)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.skipped and item.get_closest_marker('golden') is not None \
            and not hasattr(report, 'wasxfail'):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = 'failed'
        report.longrepr = f'golden test skipped, which counts as a failure: {reason}'


@pytest.fixture(scope='session')
def fashion_mnist_root() -> str:
    if not osp.isdir(FASHION_MNIST):
        pytest.skip(f'{FASHION_MNIST} missing: apt-get install dataset-fashion-mnist')
    return FASHION_MNIST


# Multi-process tests run as users run them, with torch's collective checks on: under DETAIL a
# collective that the ranks call differently fails at once, naming both calls.
DISTRIBUTED_ENV = dict(TORCH_DISTRIBUTED_DEBUG='DETAIL')
# A short process-group timeout for tests: a collective some rank never reaches fails the run
# within this many seconds instead of hanging CI.
TEST_DIST_TIMEOUT = 'env_cfg.dist_cfg.timeout=120'


def scalars(work_dir):
    """Every row of a run's ``*/vis_data/scalars.json`` (mmengine's JSON-lines log), in order."""
    rows = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            rows += [json.loads(line) for line in f]
    return rows


def run_tool(args, cwd=REPO, timeout=600, check=True, env=None) -> subprocess.CompletedProcess:
    """Run ``python tools/...`` as a user would; return the completed process."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}'
                             f'\n--- stderr\n{proc.stderr[-4000:]}')
    return proc


@pytest.fixture(scope='session')
def imagenet_layout(tmp_path_factory) -> str:
    """A real ImageNet-layout folder (train/ and val/, one wnid folder per label) made of the 20
    ImageNet photos that ship with foolbox."""
    import pathlib

    foolbox = pytest.importorskip('foolbox')
    photos = sorted((pathlib.Path(foolbox.__file__).parent / 'data').glob('imagenet_*.jpg'))
    if not photos:
        pytest.skip('foolbox ships no ImageNet photos in this version')
    root = tmp_path_factory.mktemp('imagenet')
    for split in ('train', 'val'):
        for photo in photos:
            label = int(photo.stem.split('_')[-1])
            folder = root / split / f'n{label:08d}'
            folder.mkdir(parents=True, exist_ok=True)
            (folder / photo.name).symlink_to(photo)
    return str(root)


# The tiny pipeline as shipped, shortened in length only (steps, intervals), each stage on two
# CPU processes under torchrun (--launcher pytorch, gloo, TORCH_DISTRIBUTED_DEBUG=DETAIL).
PIPELINE = 'configs/pipelines/gear_vq_tiny_fashionmnist.py'
# A log line every 2 steps and a checkpoint every step: steps 1 and 3 are checkpointed with
# their values not yet logged, so the flush before the checkpoint (a collective) runs, as with
# the shipped intervals (logging every step hid that the flush ran on rank 0 alone).
PIPELINE_LENGTH = ['train_cfg.max_iters=4', 'train_cfg.val_interval=4',
                   'default_hooks.logger.interval=2', 'default_hooks.checkpoint.interval=1',
                   TEST_DIST_TIMEOUT]
PIPELINE_EVAL = ['per_class=1', 'reference_images=20', 'tokenizer_images=8', 'analysis_images=8',
                 'sampling.batch_size=5']


def pipeline_eval_options(work_dir):
    return PIPELINE_EVAL + [f'cache_dir={work_dir / "fid_cache"}']


@pytest.fixture(scope='session')
def pipeline_two_procs(tmp_path_factory, fashion_mnist_root):
    """(work dir, completed process) of ``tools/pipeline.py --launcher pytorch
    --nproc-per-node 2`` on the tiny pipeline (a progress line every second); its stages'
    final.pth feed later tests."""
    work_dir = tmp_path_factory.mktemp('pipeline')
    proc = run_tool(['tools/pipeline.py', PIPELINE, '--work-dir', str(work_dir),
                     '--launcher', 'pytorch', '--nproc-per-node', '2', '--progress-interval', '1',
                     '--cfg-options', *PIPELINE_LENGTH,
                     '--eval-options', *pipeline_eval_options(work_dir)],
                    timeout=1200, env=DISTRIBUTED_ENV)
    return work_dir, proc


# Text-to-image: a small Fashion-MNIST caption demo set and the tiny T5 encoder, written by the
# same tools the README's commands run; ``t2i_options`` points a shipped T2I config at them.
@pytest.fixture(scope='session')
def t2i_data(tmp_path_factory, fashion_mnist_root) -> dict:
    root = tmp_path_factory.mktemp('t2i')
    for split, num in (('train', 512), ('test', 600)):
        run_tool(['tools/make_caption_shards.py', '--fashion-mnist', fashion_mnist_root,
                  '--split', split, '--num', str(num), '--maxcount', '256',
                  '--out', str(root / 'shards' / f'{split}-%06d.tar')])
    run_tool(['tools/make_tiny_text_encoder.py', '--family', 't5', '--out', str(root / 't5_tiny')])
    return dict(root=root, encoder=str(root / 't5_tiny'), shards=str(root / 'shards'))


def t2i_options(t2i_data: dict) -> list:
    """cfg-options of a shipped T2I config for the fixture's data and encoder (a fresh cache)."""
    shards = t2i_data['shards']
    return [f'model.text_encoder.path={t2i_data["encoder"]}',
            f'model.text_encoder.cache_dir={t2i_data["root"] / "text_cache"}',
            f'train_dataloader.dataset.shards={shards}/train-*.tar',
            f'val_dataloader.dataset.shards={shards}/test-*.tar',
            f'test_dataloader.dataset.shards={shards}/test-*.tar']


# A tiny transformers CLIPModel with random weights and a tokenizer trained on these prompts
# (written here, offline): the real CLIPScore code path.
CLIP_PROMPTS = ['a photo of a coat', 'a grey sandal', 'a bag on a black background']


@pytest.fixture(scope='session')
def tiny_clip(tmp_path_factory) -> str:
    import torch
    from transformers import CLIPConfig, CLIPModel

    from gear.models.text.tiny import _tokenizer
    out = tmp_path_factory.mktemp('clip')
    tok = _tokenizer('qwen3', CLIP_PROMPTS)
    tok.save_pretrained(out)
    torch.manual_seed(0)
    cfg = CLIPConfig(text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=2,
                                      max_position_embeddings=16, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.eos_token_id),
                     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, image_size=32, patch_size=8),
                     projection_dim=16)
    CLIPModel(cfg).save_pretrained(out)
    return str(out)
