"""Zoo downloads through the real code path (``resolve_checkpoint`` -> ``fetch_entry``) from a
local HTTP server: plain URLs and ``hf_hub_download`` itself (``HF_ENDPOINT`` pointed at the
server). Every failure names the entry and the cause and leaves nothing at the final path and no
temporary file; only verified bytes are ever returned."""
import hashlib
import os
import socket

import pytest

from gear.utils.download import DownloadError
from gear.utils.model_index import resolve_checkpoint

from ..zoo_server import ZooServer, entry, write_index

CONFIG = 'configs/tokenizer/tokenizer_vq_tiny_fashionmnist.py'
DATA = os.urandom(3000)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def server():
    with ZooServer() as s:
        yield s


@pytest.fixture
def zoo(tmp_path, monkeypatch, server):
    """A cache dir, and ``add(name, source, **kw)`` that puts an entry in a test index."""
    cache = tmp_path / 'cache'
    monkeypatch.setenv('GEAR_CACHE', str(cache))
    monkeypatch.setenv('HF_ENDPOINT', server.endpoint)
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    entries = []

    def add(name, source, **kw):
        entries.append(entry(name, 'vq', 'warmup', CONFIG, source, **kw))
        monkeypatch.setenv('GEAR_MODEL_INDEX', write_index(tmp_path / 'metafile.yml', entries))
    return cache, add


def files_under(path):
    return sorted(os.path.relpath(os.path.join(r, f), path)
                  for r, _, fs in os.walk(path) for f in fs)


def test_url_download_caches_exactly_the_verified_file(server, zoo):
    cache, add = zoo
    server.files['/w/tok.pt'] = DATA
    add('t-url', {'URL': server.url('/w/tok.pt')}, sha256=SHA, size=len(DATA))
    path = resolve_checkpoint('t-url')
    assert open(path, 'rb').read() == DATA
    assert files_under(cache) == ['downloads/t-url/tok.pt']
    assert resolve_checkpoint('t-url') == path  # cached: verified again, not downloaded again
    assert server.requests[('GET', '/w/tok.pt')] == 1


@pytest.mark.parametrize('case', ['checksum', 'size', 'truncated', '404'])
def test_url_failures_name_the_entry_and_leave_nothing(server, zoo, case):
    cache, add = zoo
    server.files['/w/tok.pt'] = DATA
    kw = dict(sha256=SHA)
    if case == 'checksum':
        kw = dict(sha256=hashlib.sha256(b'other bytes').hexdigest())
    elif case == 'size':
        kw = dict(size=len(DATA) + 1)
    elif case == 'truncated':
        server.truncate['/w/tok.pt'] = 1000  # Content-Length 3000, 1000 bytes, then closed
    add('t-url', {'URL': server.url('/w/tok.pt' if case != '404' else '/w/missing.pt')}, **kw)
    cause = {'checksum': 'checksum mismatch', 'size': 'size mismatch',
             'truncated': 'received 1000 of 3000 bytes', '404': 'HTTP 404'}[case]
    with pytest.raises(DownloadError, match=cause) as err:
        resolve_checkpoint('t-url')
    assert "'t-url'" in str(err.value) and 'local path' in str(err.value)
    assert files_under(cache) == []  # no partial file at the final path, no temporary left


def test_no_network_says_where_it_tried_and_how_to_pass_a_local_file(zoo):
    _, add = zoo
    with socket.socket() as s:  # a port nobody listens on
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    add('t-url', {'URL': f'http://127.0.0.1:{port}/tok.pt'})
    with pytest.raises(DownloadError, match=rf"'t-url'.*127.0.0.1:{port}/tok.pt.*refused.*"
                                            r"pass its local path instead"):
        resolve_checkpoint('t-url')


def test_hub_download_goes_through_hf_hub_download_and_resumes(server, zoo):
    cache, add = zoo
    route = server.hub_file('org/tok', 'tok.pt', DATA)
    server.cut_once[route] = 1000  # the first GET breaks off; huggingface_hub resumes (Range)
    add('t-hub', {'Hub': 'org/tok', 'Filename': 'tok.pt', 'Revision': 'main'}, sha256=SHA)
    path = resolve_checkpoint('t-hub')
    assert open(path, 'rb').read() == DATA
    assert path.startswith(str(cache / 'hub' / 'models--org--tok' / 'snapshots'))
    assert server.requests[('HEAD', route)] == 1 and server.requests[('GET', route)] == 2


def test_hub_checksum_mismatch_removes_the_cached_blob(server, zoo):
    cache, add = zoo
    server.hub_file('org/tok', 'tok.pt', DATA)
    add('t-hub', {'Hub': 'org/tok', 'Filename': 'tok.pt', 'Revision': 'main'}, sha256='0' * 64)
    with pytest.raises(DownloadError, match=r"'t-hub'.*hf://org/tok@main/tok.pt.*checksum mismatch"):
        resolve_checkpoint('t-hub')
    assert not [f for f in files_under(cache) if '/blobs/' in f or '/snapshots/' in f]


def test_hub_404_and_offline_are_clear_errors(server, zoo, monkeypatch):
    cache, add = zoo
    add('t-404', {'Hub': 'org/tok', 'Filename': 'absent.pt', 'Revision': 'main'})
    with pytest.raises(DownloadError, match=r"'t-404'.*absent.pt.*org/tok.*revision main"):
        resolve_checkpoint('t-404')
    server.hub_file('org/tok', 'tok.pt', DATA)
    add('t-hub', {'Hub': 'org/tok', 'Filename': 'tok.pt', 'Revision': 'main'})
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(DownloadError, match=r'HF_HUB_OFFLINE is set.*pass its local path'):
        resolve_checkpoint('t-hub')
    assert server.requests[('GET', '/org/tok/resolve/main/tok.pt')] == 0
    assert not [f for f in files_under(cache) if '/blobs/' in f or '/snapshots/' in f]
