"""tools/benchmark_lfq_memory.py on a tiny setting (k = 4, batch 2 x 16 tokens): the JSON it
writes has every field, both forms, positive memory and finite losses."""
import json
import math

from ..conftest import run_tool

FIELDS = ('form', 'bits', 'codebook_size', 'batch', 'tokens', 'positions', 'embed_dim',
          'chunk_size', 'baseline_rss_mib', 'peak_rss_mib', 'peak_growth_mib', 'nk_tensor_mib',
          'seconds', 'loss', 'torch_threads')


def test_tiny_run_writes_json(tmp_path):
    out = tmp_path / 'lfq_memory.json'
    proc = run_tool(['tools/benchmark_lfq_memory.py', '--bits', '4', '--batch', '2',
                     '--tokens', '16', '--embed-dim', '32', '--chunk-size', '5',
                     '--threads', '1', '--out', str(out)], timeout=300)
    report = json.loads(out.read_text())
    records = report['measurements']
    assert [r['form'] for r in records] == ['naive', 'lfq']
    for r in records:
        assert set(FIELDS) <= set(r), set(FIELDS) - set(r)
        assert (r['bits'], r['codebook_size'], r['batch'], r['positions']) == (4, 16, 2, 32)
        assert r['peak_rss_mib'] > r['baseline_rss_mib'] > 0 and r['peak_growth_mib'] > 0
        assert math.isfinite(r['loss']) and r['seconds'] > 0
    # the two forms compute the same loss (same seed, same inputs)
    assert math.isclose(records[0]['loss'], records[1]['loss'], rel_tol=1e-5)
    assert 'ru_maxrss' in report['method']
    assert 'peak growth MiB' in proc.stdout
