"""The shipped model index: names unique, every config it names loads, the entries say what the
release is (family, stage, default key, source), model_zoo.md is generated from it, and an
installed (non-editable) gear finds it; name resolution and its errors."""
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config

from gear.utils.model_index import (ModelIndexError, default_key, find_entry, load_index,
                                    resolve_checkpoint)
from gear.utils.model_zoo_table import render_model_zoo

from ..conftest import REPO
from ..zoo_server import entry, write_index

RELEASED = {  # name: (family, stage, hub repo, filename, default key)
    'llamagen-vq16': ('vq', 'pretrain', 'FoundationVision/LlamaGen', 'vq_ds16_c2i.pt', 'model'),
    'open-magvit2-lfq16': ('lfq', 'pretrain', 'TencentARC/Open-MAGVIT2-Tokenizer-16384-Pretrain',
                           'pretrain256_16384.ckpt', None),
    'ibq16-pretrain': ('ibq', 'pretrain', 'TencentARC/IBQ-Tokenizer-16384-Pretrain',
                       'IBQ_pretrain_16384.ckpt', None),
    'warmup-vq16': ('vq', 'warmup', 'BinLin203/Warmup-VQ', 'vq-with-gan.pt', 'vq_ema'),
    'gear-vq16': ('vq', 'gear', 'BinLin203/GEAR-VQ', 'gear-vq.pt', 'vq_ema'),
    'warmup-lfq16': ('lfq', 'warmup', 'BinLin203/Warmup-LFQ', 'lfq-with-gan.pt', 'vq_ema'),
    'gear-lfq16': ('lfq', 'gear', 'BinLin203/GEAR-LFQ', 'gear-lfq.pt', 'vq_ema'),
    'warmup-ibq16': ('ibq', 'warmup', 'BinLin203/Warmup-IBQ', 'ibq-with-gan.pt', 'vq_ema'),
    'gear-ibq16': ('ibq', 'gear', 'BinLin203/GEAR-IBQ', 'gear-ibq.pt', 'vq_ema'),
    'llamagen-c2i-b': ('gpt', 'ar', 'FoundationVision/LlamaGen', 'c2i_B_256.pt', 'model'),
    'llamagen-c2i-l': ('gpt', 'ar', 'FoundationVision/LlamaGen', 'c2i_L_256.pt', 'model'),
    'llamagen-c2i-xl': ('gpt', 'ar', 'FoundationVision/LlamaGen', 'c2i_XL_384.pt', 'model'),
}


@pytest.fixture(autouse=True)
def shipped_index_only(monkeypatch):
    monkeypatch.delenv('GEAR_MODEL_INDEX', raising=False)


def test_the_index_lists_the_releases_with_their_source_and_default_key():
    index = load_index()
    assert set(index) == set(RELEASED)
    for name, (family, stage, repo, filename, key) in RELEASED.items():
        e = index[name]
        assert (e.family, e.stage, e.hub['repo'], e.filename, e.key) == (
            family, stage, repo, filename, key), name
        assert e.hub['revision'] == 'main' and e.sha256 is None  # not invented
        weights = [m for m in _raw_entries() if m['Name'] == name][0]['Weights']
        assert weights == f'https://huggingface.co/{repo}/resolve/main/{filename}'
        if family == 'gpt':
            assert index[e.tokenizer].family == 'vq'
        else:  # every tokenizer row carries the published reconstruction, with its source
            (result, ) = e.results
            assert set(result['Metrics']) == {'rFID', 'PSNR', 'SSIM'}
            assert result['Source'] == 'GEAR paper / official README'
    assert index['gear-vq16'].results[0]['Metrics'] == dict(rFID=1.64, PSNR=20.78, SSIM=0.56)


def _raw_entries():
    import yaml
    out = []
    for folder in ('tokenizer', 'gear', 'ar'):
        with open(osp.join(REPO, 'configs', folder, 'metafile.yml')) as f:
            out += yaml.safe_load(f)['Models']
    return out


def test_every_config_the_index_names_exists_and_loads():
    for config in sorted({e.config for e in load_index().values()}):
        cfg = Config.fromfile(osp.join(REPO, config))
        assert 'model' in cfg, config


def test_duplicate_names_and_bad_entries_are_index_errors(tmp_path, monkeypatch):
    cfg = 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'
    dup = write_index(tmp_path / 'dup.yml', [entry('gear-vq16', 'vq', 'gear', cfg, {'URL': 'x'})])
    monkeypatch.setenv('GEAR_MODEL_INDEX', dup)
    with pytest.raises(ModelIndexError, match="'gear-vq16' is already defined in .*metafile.yml"):
        load_index()
    bad = write_index(tmp_path / 'bad.yml', [entry('t-bad', 'vqq', 'gear', cfg, {'URL': 'x'})])
    with pytest.raises(ModelIndexError, match=r"bad.yml: entry 't-bad': Metadata.Family 'vqq'"):
        load_index([bad])


def test_model_zoo_md_is_generated_from_the_index():
    with open(osp.join(REPO, 'model_zoo.md')) as f:
        assert f.read() == render_model_zoo(), \
            'model_zoo.md is stale: python tools/print_model_zoo.py > model_zoo.md'


def test_resolve_checkpoint_paths_names_and_did_you_mean(tmp_path):
    path = tmp_path / 'local.pt'
    path.write_bytes(b'x')
    assert resolve_checkpoint(str(path)) == str(path)
    with pytest.raises(FileNotFoundError, match=r"'gear-vq61' is neither an existing file nor a "
                                                r"model-zoo name; did you mean 'gear-vq16'"):
        resolve_checkpoint('gear-vq61')
    assert default_key('gear-vq16') == 'vq_ema' and default_key('llamagen-c2i-l') == 'model'
    assert default_key('open-magvit2-lfq16') is None and default_key(str(path)) is None
    assert find_entry('GEAR-VQ16').name == 'gear-vq16' and find_entry('nope') is None


def test_an_installed_gear_finds_the_index_in_gear_mim(tmp_path):
    """``setup.py build_py`` copies model-index.yml beside the configs in gear/.mim, and the
    index read from there resolves its Imports and names configs that exist there."""
    build = tmp_path / 'build'
    subprocess.run([sys.executable, 'setup.py', '-q', 'build_py', '--build-lib', str(build)],
                   cwd=REPO, check=True, capture_output=True, timeout=120)
    index = build / 'gear' / '.mim' / 'model-index.yml'
    entries = load_index([str(index)])
    assert set(entries) == set(RELEASED)
    for e in entries.values():
        assert e.index_file.startswith(str(build / 'gear' / '.mim' / 'configs'))
        assert osp.isfile(build / 'gear' / '.mim' / e.config)
    code = ('import gear.utils.model_index as m; print(m.default_index_files()[0])')
    env = dict(os.environ, PYTHONPATH=str(build))
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout.strip()
    assert out == str(index)
