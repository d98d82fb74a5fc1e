"""docs/official_parity.md is true: every table row that names a config states the value that
config resolves to (so the parity table and the reference recipes cannot drift apart)."""
import ast
import pathlib
import re

import pytest
from mmengine.config import Config

REPO = pathlib.Path(__file__).resolve().parents[1]
DOC = REPO / 'docs' / 'official_parity.md'
_CELL = re.compile(r'^`(.*)`$')


def rows():
    """(line number, config, key, value text) of every row with a config column."""
    out = []
    for n, line in enumerate(DOC.read_text().splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) == 7 and cells[2].startswith('`configs/'):
            out.append((n, *(_CELL.match(c).group(1) for c in cells[2:5])))
    return out


def resolve(cfg, key: str):
    """``a.b[0].c`` of a resolved config."""
    value = cfg
    for part in re.findall(r'[^.\[\]]+|\[\d+\]', key):
        value = value[int(part[1:-1])] if part.startswith('[') else value[part]
    return value.to_dict() if hasattr(value, 'to_dict') else value


def test_the_table_covers_every_stage():
    configs = {config for _, config, _, _ in rows()}
    assert len(rows()) >= 60
    for stage in ('tokenizer/tokenizer_vq16', 'gear/gear_vq_l', 'ar/ar_vq_l_imagenet_arinit',
                  'ar/ar_vq_l_imagenet_vqonly', 'ar/baseline_vq_l'):
        assert any(stage in c for c in configs), stage


@pytest.mark.parametrize('line, config, key, text', rows(), ids=lambda v: str(v)[:60])
def test_the_table_states_what_the_config_resolves_to(line, config, key, text):
    cfg = Config.fromfile(str(REPO / config))
    got = resolve(cfg, key)
    assert got == ast.literal_eval(text), f'docs/official_parity.md:{line}: {config} {key} = {got!r}'
