"""tools/test.py end to end on a tiny model saved as a weights file: ``tools/test.py CKPT`` (the
model from the file's arch, Fashion-MNIST test images) as a user runs it (a subprocess), and
``tools/test.py CONFIG CKPT`` (the config's model and test dataset) and argument errors through
``main`` in this process (faster). A stand-in FID network keeps it quick; the pipeline test runs
the real one."""
import importlib.util
import json
import os.path as osp

import pytest

from ..apis.test_evaluate import sha16, stand_in_net, tiny_weights  # noqa: F401 (fixtures)
from ..conftest import REPO, run_tool
from ..models.test_gear_invariants import TINY_GEAR

FAST = ['--per-class', '1', '--reference-images', '20', '--tokenizer-images', '8',
        '--analysis-images', '8', '--batch-size', '5']


def tool_main():
    spec = importlib.util.spec_from_file_location('test_tool', osp.join(REPO, 'tools', 'test.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_weights_file_alone(tiny_weights, stand_in_net, fashion_mnist_root,  # noqa: F811
                            tmp_path):
    proc = run_tool(['tools/test.py', tiny_weights, *FAST, '--reference-cache', str(tmp_path),
                     '--inception', stand_in_net, '--cfg-scale', '1.5', '--top-k', '5',
                     '--seed', '7', '--grid'], timeout=300)
    out = osp.join(osp.dirname(tiny_weights),
                   'final_eval_cfg1.5-constant_t1_k5_p1_seed7_ema_n1.json')
    assert f'[test] results: {out}' in proc.stdout
    r = json.loads(open(out).read())
    assert r['checkpoint']['sha256'] == sha16(tiny_weights) and r['checkpoint']['config'] is None
    assert r['sampling']['cfg_scale'] == 1.5 and r['sampling']['top_k'] == 5
    assert r['sampling']['seed'] == 7 and r['num_samples'] == 10
    assert r['dataset']['type'] == 'FashionMNIST' and r['dataset']['resolution'] == 16
    assert r['inception']['sha256'] == sha16(stand_in_net)
    assert r['generator']['fid'] > 0 and r['generator']['fid_method'] == 'features'
    assert osp.getsize(r['generator']['grid']) > 100
    assert r['tokenizer']['num_images'] == 8 and r['feature_alignment']['num_images'] == 8
    assert '[test] generator: fid' in proc.stdout
    assert 'alignment to effnet: cka_tokenizer' in proc.stdout
    assert 'unavailable: generator/inception_score' in proc.stdout


def test_config_and_checkpoint(tiny_weights, stand_in_net, fashion_mnist_root,  # noqa: F811
                               tmp_path):
    config = tmp_path / 'tiny.py'
    config.write_text(f'model = {TINY_GEAR!r}\n' + 'test_dataloader = dict(dataset=dict(type='
                      f"'FashionMNIST', data_root={fashion_mnist_root!r}, split='test', "
                      'resolution=16, num_samples=6))\n')
    out = tmp_path / 'r.json'
    tool_main()([str(config), tiny_weights, '--parts', 'tokenizer', '--reference-cache',
                 str(tmp_path), '--inception', stand_in_net, '--no-ema', '--out', str(out)])
    r = json.loads(out.read_text())
    assert r['checkpoint']['config'] == str(config) and r['use_ema'] is False
    assert r['tokenizer']['num_images'] == 6 and r['tokenizer']['use_ema'] is False
    assert 'generator' not in r and 'feature_alignment' not in r


def test_bad_arguments_exit_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        tool_main()(['a', 'b', 'c'])
    assert err.value.code == 2 and 'CONFIG CHECKPOINT' in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r'cannot evaluate .*missing.pth: .*not found'):
        tool_main()([str(tmp_path / 'missing.pth')])
