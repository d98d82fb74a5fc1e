"""``model_zoo.md``, generated from the model index (``python tools/print_model_zoo.py >
model_zoo.md``); ``tests/utils/test_model_index.py`` fails when the file and the index disagree."""
from typing import Dict, Iterable, Optional

from .model_index import ZooEntry, load_index

CONVERTERS = dict(vq='tokenizer.py', lfq='tokenizer.py', ibq='tokenizer.py', gpt='llamagen_gpt.py')
STAGE_ORDER = dict(pretrain=0, warmup=1, gear=2, ar=3)

HEADER = """# Model zoo

<!-- Generated from model-index.yml by `python tools/print_model_zoo.py > model_zoo.md`; edit the
index (configs/*/metafile.yml), not this file: a test fails when they disagree. -->

Released checkpoints gear reads, by the name `gear.apis.load_tokenizer(NAME)`,
`gear.apis.load_generator(NAME)` and `python tools/download.py NAME` take. Each converts to a gear
weights file (`{'schema_version': 1, 'arch': ..., 'state_dict': ...}`, named
`{name}-{sha256[:8]}.pth`, cached) with the converter named (`tools/model_converters/`), and loads
strictly; compatibility is tested offline against golden tensors of the released architectures
(`tests/data/reference/`) and the full key / shape lists of the releases. Download, cache and
publishing: [docs/model_zoo.md](docs/model_zoo.md).
"""

FOOTER = """
"default key": the bundle entry read unless `key=` is given (`vq_ema`, the EMA tokenizer, is
the official loader's default for stage 2 and inference; "-": the converter's choice, i.e. the
LitEma shadows of a Lightning `.ckpt`). "golden-tested arch": the architecture computes the
released function to 1e-5 on the small golden fixtures (`vq_small`, `lfq_small`, `ibq_small`),
and every key and shape of the full-size release loads strictly; the full-size files themselves
were not downloaded here, so no sha256 or size is recorded (a file without one is downloaded
unverified, with a warning; a publisher should add it and pin `Revision` to a commit hash). The
family of a file is told from its key names (`gear.models.converters.tokenizers`). A GPT loads
with the tokenizer its entry names; its REPA projector is not released and stays untrained
(unused for sampling).

Reconstruction numbers are as published (source in each entry's `Results`); gear has not
re-measured them (no ImageNet or GPU in its CI). gear's `psnr` / `ssim` (validation,
`tools/test.py`) follow LlamaGen's `reconstruction_vq_ddp.py` (uint8 reconstruction,
scikit-image's SSIM with `data_range=2.0`), the protocol to compare with these; its own float
PSNR and Gaussian 11 x 11 SSIM are `psnr_float` / `ssim_gaussian11`
([docs/evaluation.md](docs/evaluation.md)).
"""


def _source(entry: ZooEntry) -> str:
    if entry.hub:
        return f"HF `{entry.hub['repo']}` @ `{entry.hub['revision']}`"
    return f'<{entry.url}>'


def _architecture(entry: ZooEntry) -> str:
    arch = entry.metadata.get('Architecture')
    if isinstance(arch, dict):  # a GPT
        side = int(arch.get('block_size', 256) ** 0.5)
        return (f"LlamaGen GPT-{arch.get('size', '?')} ({entry.metadata.get('Parameters', '?')}), "
                f'{side} x {side} tokens')
    return str(arch or '-')


def _reconstruction(entry: ZooEntry) -> str:
    for result in entry.results:
        m = result.get('Metrics') or {}
        if {'rFID', 'PSNR', 'SSIM'} <= set(m):
            return f"rFID {m['rFID']} / PSNR {m['PSNR']} / SSIM {m['SSIM']}"
        if 'FID' in m:
            return f"gFID {m['FID']} ({result.get('Source', '?').split(' (')[0]})"
    return '-'


def _row(entry: ZooEntry) -> str:
    cells = [f'`{entry.name}`', entry.family, entry.stage, _source(entry), f'`{entry.filename}`',
             _architecture(entry), f'`{entry.key}`' if entry.key else '-',
             entry.tokenizer and f'`{entry.tokenizer}`' or '-', f'`{entry.config}`',
             f'`{CONVERTERS[entry.family]}`', _reconstruction(entry),
             entry.sha256[:8] if entry.sha256 else 'unknown', entry.metadata.get('Status') or '-']
    return '| ' + ' | '.join(cells) + ' |'


def render_model_zoo(entries: Optional[Dict[str, ZooEntry]] = None) -> str:
    """The text of ``model_zoo.md`` for ``entries`` (default: the shipped index)."""
    entries = load_index() if entries is None else entries
    ordered: Iterable[ZooEntry] = sorted(
        entries.values(), key=lambda e: (e.family == 'gpt', e.family, STAGE_ORDER[e.stage], e.name))
    table = ['| name | family | stage | source | file | architecture | default key | tokenizer '
             '| config | converter | published (ImageNet 256) | sha256 | status in gear |',
             '|' + '---|' * 13]
    table += [_row(e) for e in ordered]
    return HEADER + '\n' + '\n'.join(table) + '\n' + FOOTER
