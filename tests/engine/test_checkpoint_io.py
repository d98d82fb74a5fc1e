"""Atomic writes, strict loading with named keys, and finding the checkpoint to resume."""
import os

import pytest
import torch
from torch import nn

from gear.engine.runner import find_latest_checkpoint
from gear.utils.checkpoint import (CheckpointError, atomic_torch_save, load_file, load_weights,
                                   load_state_dict_strict, save_weights)


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError('boom while writing')


def test_atomic_save_failure_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / 'iter_10.pth'
    atomic_torch_save({'a': torch.ones(3)}, str(path))
    with pytest.raises(RuntimeError, match='boom'):
        atomic_torch_save({'a': torch.zeros(3), 'bad': Unpicklable()}, str(path))
    assert torch.equal(torch.load(path)['a'], torch.ones(3))  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ['iter_10.pth']     # no temporary left behind


def test_failed_first_save_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        atomic_torch_save({'bad': Unpicklable()}, str(tmp_path / 'x.pth'))
    assert os.listdir(tmp_path) == []


def test_load_file_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match='not found: .*nope.pth'):
        load_file(str(tmp_path / 'nope.pth'))
    bad = tmp_path / 'truncated.pth'
    atomic_torch_save({'w': torch.randn(100)}, str(bad))
    bad.write_bytes(bad.read_bytes()[:50])
    with pytest.raises(CheckpointError, match='truncated.pth'):
        load_file(str(bad))


def test_strict_load_names_first_mismatching_keys():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    sd = model.state_dict()
    sd['1.weight'] = torch.zeros(5, 3)
    del sd['0.bias']
    sd['extra.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError) as e:
        load_state_dict_strict(model, sd, source='ckpt.pth')
    msg = str(e.value)
    assert 'ckpt.pth' in msg and '0.bias' in msg and 'extra.weight' in msg
    assert '1.weight: checkpoint (5, 3) vs model (4, 3)' in msg


def test_weights_file_round_trip_and_schema(tmp_path):
    model = nn.Linear(2, 2)
    path = str(tmp_path / 'w.pth')
    save_weights(model.state_dict(), path, arch=dict(in_features=2))
    ckpt = load_weights(path)
    assert ckpt['arch'] == dict(in_features=2)
    load_state_dict_strict(nn.Linear(2, 2), ckpt['state_dict'])
    torch.save(dict(schema_version=99, state_dict={}), path)
    with pytest.raises(CheckpointError, match='schema_version 99'):
        load_weights(path)


def test_find_latest_checkpoint_survives_a_stale_pointer(tmp_path):
    assert find_latest_checkpoint(str(tmp_path)) is None
    for it in (5, 20, 10):
        torch.save({}, tmp_path / f'iter_{it}.pth')
    (tmp_path / '.iter_30.pth.abc.tmp').write_bytes(b'partial')  # an interrupted write
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_40.pth'))  # gone
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_20.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_10.pth'))
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_10.pth')
