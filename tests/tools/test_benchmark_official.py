"""tools/benchmark_official.py without the official checkout: its refusals (a missing or partial
``--peer-dir``), the loader of the release's helpers, and the gear side timed for one step."""
import importlib.util
import json
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_official', REPO / 'tools' / 'benchmark_official.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts tools/ on sys.path for its sibling
    return module


def test_official_side_needs_a_peer_dir(tool, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        tool.main(['--out', str(tmp_path / 'x.json')])
    assert '--peer-dir is needed' in str(err.value)
    assert not (tmp_path / 'x.json').exists()


def test_partial_peer_checkout_is_refused_naming_the_missing_files(tool, tmp_path):
    peer = tmp_path / 'GEAR'
    (peer / 'models').mkdir(parents=True)
    (peer / 'models' / 'vq_model.py').write_text('')
    with pytest.raises(SystemExit) as err:
        tool.main(['--peer-dir', str(peer), '--out', str(tmp_path / 'x.json')])
    msg = str(err.value)
    assert 'models/llamagen.py' in msg and 'src/train_gear.py' in msg
    assert 'models/vq_model.py' not in msg and 'Tencent-Hunyuan/GEAR' in msg


def test_bad_counts_are_refused(tool, tmp_path):
    with pytest.raises(SystemExit, match='--iters'):
        tool.main(['--sides', 'gear', '--iters', '0', '--out', str(tmp_path / 'x.json')])


def test_helpers_are_compiled_by_name_without_the_module_imports(tool, tmp_path):
    """The release's train_gear.py imports accelerate / wandb at its top; only the named
    top-level definitions are compiled, and a name it lacks is refused."""
    source = tmp_path / 'train_gear.py'
    source.write_text('import a_package_that_is_not_installed\n'
                      'def requires_grad(module, flag=True):\n'
                      '    for p in module.parameters():\n'
                      '        p.requires_grad = flag\n'
                      'class ProjectorBank(nn.Module):\n'
                      '    pass\n'
                      'main()\n')
    peer = importlib.import_module('benchmark_official_peer')
    helpers = peer.load_helpers(str(source), ('requires_grad', 'ProjectorBank'))
    import torch
    lin = torch.nn.Linear(2, 2)
    helpers.requires_grad(lin, False)
    assert not any(p.requires_grad for p in lin.parameters())
    assert issubclass(helpers.ProjectorBank, torch.nn.Module)
    with pytest.raises(SystemExit, match='update_ema'):
        peer.load_helpers(str(source), ('requires_grad', 'update_ema'))


def test_gear_side_alone_times_one_step(tool, tmp_path):
    out = tmp_path / 'gear.json'
    tool.main(['--sides', 'gear', '--iters', '1', '--repeats', '1', '--warmup', '0',
               '--batch-size', '1', '--out', str(out)])
    rec = json.loads(out.read_text())
    assert set(rec['results']) == {'gear'} and 'speedup_gear_over_official' not in rec
    gear = rec['results']['gear']
    assert gear['seconds_per_step'] > 0 and len(gear['rounds_s']) == 1
    assert gear['images_per_s'] == pytest.approx(1 / gear['seconds_per_step'])
    phases = gear['phase_time_s']
    assert {'teacher', 'tokenizer_forward', 'tokenizer', 'discriminator', 'prior',
            'other'} <= set(phases)
    assert all(v >= 0 for v in phases.values())
    assert sum(phases.values()) == pytest.approx(gear['seconds_per_step'], rel=1e-6)
    # the sizes reached the model: 16 x 16 tokens of 64 codes, GPT 64 x 3
    assert rec['sizes']['codebook_size'] == 64 and rec['sizes']['dim'] == 64
    assert rec['params']['gear_tokenizer'] == 15803787  # ch 128, ch_mult (1, 2), z 256
    # convolutions (forward and backward) are most of the FLOPs of a step
    ops = gear['flops_by_op']
    conv = ops['convolution'] + ops['convolution_backward']
    assert gear['flops_per_step'] == sum(ops.values()) and conv > 0.8 * gear['flops_per_step']
