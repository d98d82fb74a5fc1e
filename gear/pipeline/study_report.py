"""The study's numbers: ``study.json``, plots and ``report.md`` from the logs of its stages.

Speed-up of an arm over the baseline at one seed (the paper's measure): the baseline AR's final
loss (the mean of its last logging window) is the target; the arm's AR reaches it at the first
logged step whose window mean is at or below it; speed-up = baseline steps / that step. An arm
that never gets there has no speed-up (``null``, with its final loss), never a made-up number.
Next-token losses of different tokenizers are cross-entropies over different token sequences:
``report.md`` shows each tokenizer's code entropy next to them.
"""
import io
import json
import os.path as osp
from typing import Dict, List, Optional

import numpy as np

from gear.utils.checkpoint import atomic_write_bytes

from .study import REFERENCE_VARIANT, WARMUP, Study, ar_name, stage1_name
from .summary import read_scalars

AR_KEYS = ('prior/loss_ntp', 'prior/loss_align')
COLLAPSED_USAGE = 0.05  # fraction of the codebook used in a logging window
STAGE1_KEYS = ('codebook/tokenizer/usage', 'codebook/tokenizer/perplexity',
               'assign/natural_entropy', 'assign/soft_entropy', 'tokenizer/loss_recon',
               'prior/loss_ntp')


def series(stage_dir: str, keys) -> Dict[str, List[float]]:
    """{'step': [...], key: [...]} of the training rows that have ``keys[0]``."""
    train, _ = read_scalars(stage_dir)
    rows = [r for r in train if keys[0] in r]
    return {'step': [r['step'] for r in rows], **{k: [r.get(k) for r in rows] for k in keys}}


def steps_to_reach(steps: List[int], values: List[float], target: float) -> Optional[int]:
    """The first logged step whose value is <= ``target`` (None if none is)."""
    for step, value in zip(steps, values):
        if value is not None and value <= target:
            return step
    return None


def speedup(arm: Dict[str, list], baseline: Dict[str, list], key: str) -> dict:
    """Steps for ``arm`` to reach the baseline's final ``key`` vs the baseline's own steps."""
    if not baseline['step'] or not arm['step']:
        return dict(speedup=None, reason='no logged steps')
    target, total = baseline[key][-1], baseline['step'][-1]
    reached = steps_to_reach(arm['step'], arm[key], target)
    out = dict(target=target, baseline_steps=total, steps=reached, final=arm[key][-1])
    out['speedup'] = total / reached if reached else None
    return out


def spread(values: List[Optional[float]]) -> dict:
    """mean, std (ddof 1), min, max and n of the non-null values."""
    v = np.array([x for x in values if x is not None], dtype=float)
    if not len(v):
        return dict(n=0, mean=None, std=None, min=None, max=None)
    return dict(n=int(len(v)), mean=float(v.mean()), std=float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                min=float(v.min()), max=float(v.max()))


def load_evaluation(study: Study, stage: str) -> Optional[dict]:
    path = osp.join(study.work_dir, stage, 'evaluation.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        r = json.load(f)
    tok, gen = r.get('tokenizer', {}), r.get('generator', {})
    out = {k: tok.get(k) for k in ('psnr', 'rfid', 'l1', 'ssim', 'psnr_float', 'ssim_gaussian11',
                                   'codebook_usage', 'codebook_perplexity', 'codebook_entropy')}
    out.update({k: gen.get(k) for k in ('fid', 'precision', 'recall', 'num_samples')})
    for teacher, v in r.get('feature_alignment', {}).get('teachers', {}).items():
        out.update({f'{teacher}/{k}': x for k, x in v.items()})
    out['results'] = path
    return out


def analyse(study: Study) -> dict:
    """Everything ``study.json`` holds: curves, speed-ups per seed and their spread, stage-1
    statistics per variant, evaluations."""
    d = lambda name: osp.join(study.work_dir, name)  # noqa: E731
    ars = {arm: {s: series(d(ar_name(arm, s)), AR_KEYS) for s in study.seeds_of(arm)}
           for arm in study.arms()}
    stage1 = {v: {s: series(d(stage1_name(v, s)), STAGE1_KEYS) for s in study.variant_seeds[v]}
              for v in study.variants}
    result = dict(study=study.source, work_dir=study.work_dir, seeds=study.seeds,
                  variants=study.variants, ar_curves=ars, stage1_curves=stage1, speedup={},
                  evaluation={})
    for arm in study.variants:
        per_seed = {}
        for s in study.seeds_of(arm):
            if s in ars['baseline']:
                per_seed[s] = {k.split('/')[-1]: speedup(ars[arm][s], ars['baseline'][s], k)
                               for k in AR_KEYS}
        result['speedup'][arm] = dict(
            per_seed=per_seed,
            **{k.split('/')[-1]: spread([p[k.split('/')[-1]]['speedup'] for p in per_seed.values()])
               for k in AR_KEYS})
    for arm in study.arms():
        for s in study.seeds_of(arm):
            ev = load_evaluation(study, ar_name(arm, s))
            if ev is not None:
                result['evaluation'][ar_name(arm, s)] = ev
    warm = series(d(WARMUP), ('tokenizer/loss_recon',))
    result['warmup_steps'] = warm['step'][-1] if warm['step'] else 0
    return result


def _band(ax, curves: Dict[int, dict], key: str, label: str, color: str) -> None:
    """Mean over seeds with a min-max band (seeds cut to their common logged steps)."""
    runs = [c for c in curves.values() if c['step']]
    if not runs:
        return
    n = min(len(c['step']) for c in runs)
    steps = runs[0]['step'][:n]
    values = np.array([[np.nan if v is None else v for v in c[key][:n]] for c in runs])
    ax.plot(steps, values.mean(0), color=color, label=f'{label} (n={len(runs)})')
    if len(runs) > 1:
        ax.fill_between(steps, values.min(0), values.max(0), color=color, alpha=0.2)


def _save(fig, path: str) -> None:
    import matplotlib.pyplot as plt
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=110)
    plt.close(fig)
    atomic_write_bytes(buf.getvalue(), path)


def plot(result: dict, out_dir: str) -> Dict[str, str]:
    """Three PNGs: GEAR vs baseline AR curves over seeds, every arm's AR at its first seed,
    stage-1 codebook statistics per variant."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ars, stage1, paths = result['ar_curves'], result['stage1_curves'], {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key, ax in zip(AR_KEYS, axes):
        _band(ax, ars[REFERENCE_VARIANT], key, 'GEAR tokenizer (vq-only)', 'C0')
        _band(ax, ars['baseline'], key, 'warm-up tokenizer (baseline)', 'C1')
        ax.set(title=f'fresh AR: {key.split("/")[-1]} (mean, min-max over seeds)', xlabel='step')
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    paths['ar_curves'] = osp.join(out_dir, 'ar_curves.png')
    _save(fig, paths['ar_curves'])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, arm in enumerate(ars):
        seed = min(ars[arm])
        for key, ax in zip(AR_KEYS, axes):
            c = ars[arm][seed]
            ax.plot(c['step'], c[key], color=f'C{i}', label=f'{arm} (seed {seed})')
    for key, ax in zip(AR_KEYS, axes):
        ax.set(title=f'fresh AR per arm: {key.split("/")[-1]}', xlabel='step')
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    paths['ablation_ar_curves'] = osp.join(out_dir, 'ablation_ar_curves.png')
    _save(fig, paths['ablation_ar_curves'])
    keys = ('codebook/tokenizer/usage', 'codebook/tokenizer/perplexity', 'assign/natural_entropy',
            'assign/soft_entropy')
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.8))
    for i, (variant, curves) in enumerate(stage1.items()):
        for key, ax in zip(keys, axes):
            _band(ax, curves, key, variant, f'C{i}')
    for key, ax in zip(keys, axes):
        ax.set(title=f'stage 1: {key.split("/")[-1]}', xlabel='step')
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    paths['stage1_codebook'] = osp.join(out_dir, 'stage1_codebook.png')
    _save(fig, paths['stage1_codebook'])
    return paths


def _fmt(x, digits=3) -> str:
    if x is None:
        return '-'
    return f'{x:.{digits}f}' if isinstance(x, float) else str(x)


def _speedup_cell(s: dict) -> str:
    if not s['n']:
        return 'not reached'
    return f"{s['mean']:.2f}x ± {s['std']:.2f} (min {s['min']:.2f}, n={s['n']})"


def markdown(result: dict, study: Study, command: str) -> str:
    """``report.md``: the command, the headline, the per-seed table, the ablations, the plots."""
    sp = result['speedup']
    ref = sp[REFERENCE_VARIANT]
    timing = result.get('timing') or {}
    took = (f" Took {timing['wall_s'] / 60:.1f} min wall, {timing['cpu_s'] / 60:.1f} min CPU "
            f"({timing['jobs']} jobs; {timing['note']})." if timing else '')
    lines = [f'# Study: {osp.basename(study.source)}', '', f'Command: `{command}`.{took}', '',
             f'Work dir: `{study.work_dir}`. Seeds {study.seeds}; one warm-up tokenizer '
             f'({result["warmup_steps"]} steps); every AR has the same architecture, '
             'initialisation and data order per seed, and the same step budget.', '',
             '## GEAR tokenizer vs warm-up tokenizer: a fresh AR on each', '',
             f'- next-token loss speed-up: {_speedup_cell(ref["loss_ntp"])}',
             f'- alignment loss speed-up: {_speedup_cell(ref["loss_align"])}', '',
             '| seed | baseline final NTP | GEAR final NTP | NTP: steps to baseline final '
             '| baseline final align | GEAR final align | align: steps |',
             '|---|---|---|---|---|---|---|']
    for seed, p in ref['per_seed'].items():
        n, a = p['loss_ntp'], p['loss_align']
        lines.append(f"| {seed} | {_fmt(n.get('target'))} | {_fmt(n.get('final'))} | "
                     f"{n.get('steps') or 'not reached'} / {n.get('baseline_steps')} | "
                     f"{_fmt(a.get('target'))} | {_fmt(a.get('final'))} | "
                     f"{a.get('steps') or 'not reached'} / {a.get('baseline_steps')} |")
    lines += ['', '## Ablations (stage 1 variants; fresh AR on each tokenizer)', '',
              'A speed-up on a collapsed codebook (stage-1 usage below '
              f'{COLLAPSED_USAGE}) is marked: its AR predicts a near-constant token sequence, '
              'which is no speed-up at all.', '',
              '| variant | options | NTP speed-up | align speed-up | final NTP (first seed) | '
              'stage-1 final usage | final natural entropy | final soft entropy |',
              '|---|---|---|---|---|---|---|---|']
    ars = result['ar_curves']
    for variant, opts in study.variants.items():
        c = result['stage1_curves'][variant][min(result['stage1_curves'][variant])]
        last = lambda k: c[k][-1] if c['step'] else None  # noqa: E731
        usage = last('codebook/tokenizer/usage')
        flag = (f' (collapsed: usage {usage:.3f})'
                if usage is not None and usage < COLLAPSED_USAGE else '')
        ar = ars[variant][min(ars[variant])]
        lines.append(f"| {variant} | `{opts or 'reference'}` | "
                     f"{_speedup_cell(sp[variant]['loss_ntp'])}{flag} | "
                     f"{_speedup_cell(sp[variant]['loss_align'])} | "
                     f"{_fmt(ar['prior/loss_ntp'][-1] if ar['step'] else None)} | {_fmt(usage)} | "
                     f"{_fmt(last('assign/natural_entropy'))} | {_fmt(last('assign/soft_entropy'))} |")
    base = ars['baseline'][min(ars['baseline'])]
    if base['step']:
        lines.append(f"| baseline | warm-up tokenizer | 1 (reference) | 1 (reference) | "
                     f"{_fmt(base['prior/loss_ntp'][-1])} | | | |")
    if result['evaluation']:
        cols = sorted({k for ev in result['evaluation'].values() for k in ev if k != 'results'})
        lines += ['', '## Evaluation (EMA weights; tokenizer metrics are of the AR\'s frozen '
                  'tokenizer)', '', '`psnr` / `ssim`: LlamaGen\'s protocol, `psnr_float` / '
                  '`ssim_gaussian11`: gear\'s own (docs/evaluation.md); an evaluation without '
                  '`psnr_float` predates this and its `psnr` / `ssim` are gear\'s own.', '',
                  '| AR stage | ' + ' | '.join(cols) + ' |',
                  '|---' * (len(cols) + 1) + '|']
        for stage, ev in result['evaluation'].items():
            lines.append(f'| {stage} | ' + ' | '.join(_fmt(ev.get(k)) for k in cols) + ' |')
    lines += ['', '## Plots', '', '![AR curves](ar_curves.png)', '',
              '![AR curves per arm](ablation_ar_curves.png)', '',
              '![stage-1 codebook statistics](stage1_codebook.png)', '']
    return '\n'.join(lines)


def write_report(study: Study, command: str, timing: Optional[dict] = None) -> dict:
    """Write ``study.json``, the plots and ``report.md`` in the study's work dir."""
    result = analyse(study)
    result['plots'] = plot(result, study.work_dir)
    result['command'], result['timing'] = command, timing
    atomic_write_bytes(json.dumps(result, indent=1).encode(),
                       osp.join(study.work_dir, 'study.json'))
    atomic_write_bytes(markdown(result, study, command).encode(),
                       osp.join(study.work_dir, 'report.md'))
    return result
