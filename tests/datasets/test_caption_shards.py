"""CaptionShards, its writer and sources, and PackGearInputs with captions (CPU, seconds)."""
import glob
import importlib.util
import io
import json
import multiprocessing
import os
import pickle
import shutil
import tarfile

import mmengine.dataset.sampler as mm_sampler
import numpy as np
import pytest
import torch
from mmengine.dataset import InfiniteSampler, default_collate
from PIL import Image
from torch.utils.data import DataLoader

from gear.datasets import CaptionShards
from gear.datasets import caption_shards as caption_shards_module
from gear.datasets.caption_shards_writer import write_caption_shards
from gear.datasets.caption_sources import (CAPTION_NAMES, fashion_mnist_samples,
                                           folder_samples)
from gear.datasets.fashion_mnist import load_fashion_mnist
from gear.datasets.shard_index import read_members, scan_tar, sidecar_path
from gear.datasets.transforms import PackGearInputs, to_signed_tensor

FMNIST = '/usr/share/datasets/fashion-mnist'
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N, PER_SHARD = 200, 50  # 4 shards
pytestmark = pytest.mark.skipif(not os.path.isdir(FMNIST), reason='dataset-fashion-mnist missing')


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """(folder, shard paths, the samples written) of 200 Fashion-MNIST images in 4 shards."""
    root = tmp_path_factory.mktemp('shards')
    samples = list(fashion_mnist_samples(FMNIST, 'train', N, seed=0))
    shards = write_caption_shards(samples, str(root / 'train-%06d.tar'), maxcount=PER_SHARD)
    return root, shards, samples


def copy_demo(demo, dst):
    for path in glob.glob(str(demo[0] / '*')):
        shutil.copy2(path, dst)  # copy2 keeps the mtime: the sidecars stay valid
    return sorted(glob.glob(str(dst / '*.tar')))


def logs(monkeypatch):
    messages = []
    monkeypatch.setattr(caption_shards_module, 'print_log', lambda msg, **kw: messages.append(msg))
    return messages


def sampler(ds, rank=0, world_size=1, monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr(mm_sampler, 'get_dist_info', lambda: (rank, world_size))
    return InfiniteSampler(ds, shuffle=True, seed=0)


def loader(ds, num_workers=0, **kw):
    return DataLoader(ds, batch_size=16, sampler=sampler(ds), num_workers=num_workers,
                      collate_fn=default_collate, **kw)


def test_round_trip_across_shards(demo):
    root, shards, samples = demo
    assert len(shards) == 4 and not glob.glob(str(root / '*.partial'))
    ds = CaptionShards(str(root / 'train-*.tar'), resolution=32)
    assert len(ds) == N and ds.shards == shards
    images, _ = load_fashion_mnist(FMNIST, 'train')
    for i, (key, image, ext, caption) in enumerate(samples):
        raw = ds.raw(i)
        assert (raw['key'], raw['image'], raw['image_ext'], raw['caption']) == \
            (key, image, ext, caption)
        assert raw['shard'] == shards[i // PER_SHARD]
        item = ds[i]
        assert item['caption'] == caption and set(item) == {'img', 'caption'}
        want = to_signed_tensor(np.pad(images[i], 2)).expand(3, 32, 32)  # exact pixels
        assert torch.equal(item['img'], want)


def test_brace_pattern_list_and_num_samples(demo):
    root, shards, samples = demo
    ds = CaptionShards(str(root / 'train-{000001..000002}.tar'), resolution=32)
    assert ds.shards == shards[1:3] and ds.key(0) == samples[PER_SHARD][0]
    ds = CaptionShards([shards[3], shards[0]], resolution=32, num_samples=60)
    assert len(ds) == 60 and ds.key(0) == samples[150][0] and ds.key(59) == samples[9][0]


def test_sidecar_index_equals_tarfile_scan(demo):
    for shard in demo[1]:
        with open(sidecar_path(shard)) as f:
            index = json.load(f)
        with tarfile.open(shard) as tar:
            scan = [[m.name, m.offset_data, m.size] for m in tar]
        assert index['members'] == scan and index['shard'] == os.path.basename(shard)
        members, how = read_members(shard)
        assert how == 'sidecar' and [list(m) for m in members] == scan == \
            [list(m) for m in scan_tar(shard)]


def test_missing_sidecar_still_works(demo, tmp_path, monkeypatch):
    shards = copy_demo(demo, tmp_path)
    os.remove(sidecar_path(shards[2]))
    messages = logs(monkeypatch)
    ds = CaptionShards(str(tmp_path / '*.tar'), resolution=32)
    assert read_members(shards[2])[1] == 'missing'
    assert len(messages) == 1 and 'missing' in messages[0] and shards[2] in messages[0]
    for i in (0, 120, 149, 199):
        assert ds.raw(i)['image'] == demo[2][i][1] and ds[i]['caption'] == demo[2][i][3]


def test_stale_sidecar_detected_and_rebuilt(demo, tmp_path, monkeypatch):
    shards = copy_demo(demo, tmp_path)
    old_index = open(sidecar_path(shards[0])).read()
    os.remove(sidecar_path(shards[0]))
    os.remove(shards[0])
    fresh = [(f'new-{i}', demo[2][i][1], 'png', f'a new caption number {i}') for i in range(30)]
    write_caption_shards(fresh, str(tmp_path / 'train-%06d.tar'), maxcount=PER_SHARD,
                         overwrite=True)  # rewrites train-000000 and removes the other three
    for other, src in zip(shards[1:], demo[1][1:]):
        shutil.copy2(src, other)
        shutil.copy2(sidecar_path(src), sidecar_path(other))
    with open(sidecar_path(shards[0]), 'w') as f:
        f.write(old_index)  # the old shard's index beside the new shard
    messages = logs(monkeypatch)
    ds = CaptionShards(str(tmp_path / '*.tar'), resolution=32)
    assert len(messages) == 1 and 'stale' in messages[0] and sidecar_path(shards[0]) in messages[0]
    assert len(ds) == 30 + 3 * PER_SHARD
    assert [ds.raw(i)['caption'] for i in range(30)] == [c for *_, c in fresh]


def test_global_shuffle_mixes_shards(demo):
    ds = CaptionShards(str(demo[0] / '*.tar'), resolution=32)
    order = iter(sampler(ds))
    first = [next(order) for _ in range(4 * 8)]  # four batches of 8
    assert {ds.raw(i)['shard'] for i in first} == set(demo[1])
    assert first != sorted(first)


def test_two_ranks_see_disjoint_samples_covering_the_set(demo, monkeypatch):
    ds = CaptionShards(str(demo[0] / '*.tar'), resolution=32)
    seen = []
    for rank in (0, 1):
        order = iter(sampler(ds, rank, 2, monkeypatch))
        seen.append([next(order) for _ in range(N // 2)])
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(N))


def test_two_workers_yield_what_one_process_does(demo):
    ds = CaptionShards(str(demo[0] / '*.tar'), resolution=32)
    ds[0]  # the parent opens a shard before forking: workers must open their own
    want = [b for _, b in zip(range(5), loader(ds))]
    got = [b for _, b in zip(range(5), loader(ds, 2, multiprocessing_context='fork'))]
    for a, b in zip(want, got):
        assert torch.equal(a['img'], b['img']) and a['caption'] == b['caption']
        assert isinstance(a['caption'], list) and isinstance(a['caption'][0], str)
    ctx = multiprocessing.get_context('fork')
    result = ctx.Queue()

    def child():  # a forked child reads through its own descriptors, not the parent's
        caption = ds[1]['caption']
        result.put((os.getpid(), ds._files.pid, caption))
    proc = ctx.Process(target=child)
    proc.start()
    pid, cache_pid, caption = result.get(timeout=30)
    proc.join()
    assert cache_pid == pid != os.getpid() and caption == ds[1]['caption']
    copy = pickle.loads(pickle.dumps(ds))  # spawn / forkserver workers get a pickled copy
    assert not copy._files.fds and copy[7]['caption'] == ds[7]['caption']


def test_resume_lands_on_the_same_batch(demo):
    ds = CaptionShards(str(demo[0] / '*.tar'), resolution=32)
    k, run = 3, iter(loader(ds))
    for _ in range(k):
        next(run)
    want = next(run)
    resumed = iter(loader(CaptionShards(str(demo[0] / '*.tar'), resolution=32)))
    for _ in range(k):  # mmengine's IterBasedTrainLoop: "Advance dataloader k steps"
        next(resumed)
    got = next(resumed)
    assert got['caption'] == want['caption'] and torch.equal(got['img'], want['img'])


def test_no_shard_matched_names_the_pattern(tmp_path, demo):
    with pytest.raises(FileNotFoundError, match=r"no shard matched .*nothing-\*\.tar"):
        CaptionShards(str(tmp_path / 'nothing-*.tar'))
    with pytest.raises(FileNotFoundError, match=r'train-000007\.tar'):
        CaptionShards(str(demo[0] / 'train-{000003..000007}.tar'))


def write_tar(path, members):
    with tarfile.open(path, 'w') as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_missing_caption_or_image_names_shard_and_key(tmp_path, demo):
    png, shard = demo[2][0][1], str(tmp_path / 'bad-0.tar')
    write_tar(shard, [('a.png', png), ('a.json', b'{"caption": "x"}'), ('b.png', png)])
    with pytest.raises(ValueError, match=rf"shard {shard}: key 'b' has an image but no caption"):
        CaptionShards(shard)
    write_tar(shard, [('c.txt', b'a caption'), ('d.png', png), ('d.txt', b'y')])
    with pytest.raises(ValueError, match=rf"shard {shard}: key 'c' has a caption but no image"):
        CaptionShards(shard)
    write_tar(shard, [('e.png', png), ('e.json', b'{"text": "x"}')])
    with pytest.raises(KeyError, match=r"member e\.json: no caption_key 'caption'"):
        CaptionShards(shard)[0]
    assert CaptionShards(shard, caption_key='text', resolution=28)[0]['caption'] == 'x'


def test_interrupted_write_leaves_no_complete_looking_tar(tmp_path, demo):
    def interrupted():
        yield from demo[2][:120]
        raise KeyboardInterrupt  # mid-iterator, after two full shards
    with pytest.raises(KeyboardInterrupt):
        write_caption_shards(interrupted(), str(tmp_path / 'train-%06d.tar'), maxcount=PER_SHARD)
    assert os.listdir(tmp_path) == []


def test_writer_refuses_duplicate_keys_empty_captions_and_existing_shards(tmp_path, demo):
    out = str(tmp_path / 'train-%06d.tar')
    dup = demo[2][:3] + [demo[2][1]]
    with pytest.raises(ValueError, match=r"duplicate key 'fmnist-train-000001'"):
        write_caption_shards(dup, out)
    empty = demo[2][:2] + [('k2', demo[2][2][1], 'png', '  ')]
    with pytest.raises(ValueError, match=r"key 'k2'.*empty caption"):
        write_caption_shards(empty, out)
    assert os.listdir(tmp_path) == []
    write_caption_shards(demo[2][:3], out)
    with pytest.raises(FileExistsError, match=r'train-000000\.tar'):
        write_caption_shards(demo[2][:3], out)


def test_fashion_mnist_captions_name_the_class(demo):
    _, labels = load_fashion_mnist(FMNIST, 'train')
    captions = [c for *_, c in demo[2]]
    for i, caption in enumerate(captions):
        name = CAPTION_NAMES[labels[i]]
        assert name in caption and (name != 'shirt' or 't-shirt' not in caption)
    assert len({c.replace(CAPTION_NAMES[labels[i]], '{}') for i, c in enumerate(captions)}) > 3
    again = [c for *_, c in fashion_mnist_samples(FMNIST, 'train', N, seed=0)]
    other = [c for *_, c in fashion_mnist_samples(FMNIST, 'train', N, seed=1)]
    assert again == captions and other != captions


def test_folder_sources(tmp_path):
    for name in ('a.png', 'sub/b.v2.png'):
        os.makedirs(tmp_path / 'img' / os.path.dirname(name), exist_ok=True)
        Image.new('RGB', (5, 4), (9, 8, 7)).save(tmp_path / 'img' / name)
    (tmp_path / 'img' / 'a.txt').write_text('first\n')
    (tmp_path / 'img' / 'sub' / 'b.v2.txt').write_text('second')
    got = list(folder_samples(str(tmp_path / 'img')))
    assert [(k, e, c) for k, _, e, c in got] == [('a', 'png', 'first'),
                                                 ('sub/b_v2', 'png', 'second')]
    lines = [json.dumps(dict(file='sub/b.v2.png', caption='from jsonl'))]
    (tmp_path / 'c.jsonl').write_text('\n'.join(lines))
    got = list(folder_samples(str(tmp_path / 'img'), str(tmp_path / 'c.jsonl')))
    assert [(k, c) for k, _, _, c in got] == [('sub/b_v2', 'from jsonl')]
    os.remove(tmp_path / 'img' / 'a.txt')
    with pytest.raises(FileNotFoundError, match=r'a\.png has no caption file .*a\.txt'):
        list(folder_samples(str(tmp_path / 'img')))


def test_cli_writes_the_demo_shards(tmp_path):
    spec = importlib.util.spec_from_file_location(
        'make_caption_shards', os.path.join(REPO, 'tools', 'make_caption_shards.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main(['--fashion-mnist', FMNIST, '--split', 'test', '--num', '20', '--maxcount', '8',
              '--out', str(tmp_path / 'test-%06d.tar')])
    ds = CaptionShards(str(tmp_path / 'test-*.tar'), resolution=32)
    assert len(ds.shards) == 3 and len(ds) == 20 and ds.key(19) == 'fmnist-test-000019'


def test_pack_gear_inputs_keeps_captions():
    pack, img = PackGearInputs(), np.zeros((4, 4, 3), np.uint8)
    out = pack(dict(img=img, caption='a cat', key='k'))
    assert set(out) == {'img', 'caption'} and out['caption'] == 'a cat'
    assert out['img'].shape == (3, 4, 4)
    both = pack(dict(img=img, caption='a cat', label=3))
    assert both['label'] == 3 and both['caption'] == 'a cat'
    assert set(pack(dict(img=img, label=2))) == {'img', 'label'}
    with pytest.raises(KeyError, match=r"PackGearInputs needs the key 'label'"):
        pack(dict(img=img))
    with pytest.raises(ValueError, match=r"'caption' must be a str, got int"):
        pack(dict(img=img, caption=5))
    batch = default_collate([out, out])
    assert batch['caption'] == ['a cat', 'a cat'] and batch['img'].shape == (2, 3, 4, 4)
