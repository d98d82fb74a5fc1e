"""Summarise a pipeline's work dir: ``summary.json`` and ``curves.png``.

Reads the scalars every stage logged (``{stage}/{timestamp}/vis_data/scalars.json``, several
runs when a stage was resumed: a later run's rows replace an earlier run's at the same step) and
writes the final value of every loss, the codebook statistics, the last validation metrics, and
the next-token and alignment curves of the two ARs the pipeline compares, and the headline
numbers of every stage's ``evaluation.json`` (FID, precision / recall, tokenizer metrics,
feature alignment) with the path of the full results.
"""
import glob
import io
import json
import os.path as osp
from typing import Dict, List, Tuple

from gear.utils.checkpoint import atomic_write_bytes

from .chain import Pipeline

CURVE_KEYS = ('prior/loss_ntp', 'prior/loss_align')


def read_scalars(stage_dir: str) -> Tuple[List[dict], List[dict]]:
    """(train rows, validation rows) of a stage, each sorted by step, one row per step."""
    train, val = {}, {}
    for path in sorted(glob.glob(osp.join(stage_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                is_train = any(k.startswith(('tokenizer/', 'prior/', 'discriminator/')) for k in row)
                if is_train:
                    train[row['step']] = row
                else:  # validation and generation metrics of one step arrive as separate rows
                    val.setdefault(row['step'], {}).update(row)
    return [train[s] for s in sorted(train)], [val[s] for s in sorted(val)]


def stage_summary(pipeline: Pipeline, name: str) -> Dict[str, object]:
    train, val = read_scalars(pipeline.stage_dir(name))
    last = train[-1] if train else {}
    return dict(
        complete=pipeline.is_complete(name),
        final_weights=pipeline.final_weights(name),
        steps=last.get('step', 0),
        final_losses={k: v for k, v in last.items() if 'loss' in k},
        codebook={k.split('/')[-1]: v for k, v in last.items() if k.startswith('codebook/')},
        alignment={k: v for k, v in last.items() if '/cos/' in k},
        val={k: v for k, v in (val[-1] if val else {}).items() if k not in ('time', 'data_time')})


def curves(pipeline: Pipeline, name: str) -> Dict[str, List[float]]:
    train, val = read_scalars(pipeline.stage_dir(name))
    rows = [r for r in train if CURVE_KEYS[0] in r]
    out = {'stage': name, 'step': [r['step'] for r in rows]}
    for key in CURVE_KEYS:
        out[key.split('/')[-1]] = [r.get(key) for r in rows]
    val_rows = [r for r in val if 'val/loss_ntp' in r]
    out['val_step'] = [r['step'] for r in val_rows]
    out['val_loss_ntp'] = [r['val/loss_ntp'] for r in val_rows]
    return out


def plot_curves(curves_by_role: Dict[str, dict], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (role, c) in enumerate(curves_by_role.items()):
        label, color = f'{role} ({c["stage"]})', f'C{i}'
        axes[0].plot(c['step'], c['loss_ntp'], color=color, label=f'{label}, train')
        if c['val_step']:
            axes[0].plot(c['val_step'], c['val_loss_ntp'], 'o--', color=color,
                         label=f'{label}, val (EMA)')
        axes[1].plot(c['step'], c['loss_align'], color=color, label=label)
    axes[0].set(title='next-token loss', xlabel='step', ylabel='cross-entropy (nats)')
    axes[1].set(title='alignment loss (lambda_ar x -cos)', xlabel='step', ylabel='loss')
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=110)
    plt.close(fig)
    atomic_write_bytes(buf.getvalue(), path)


HEADLINE = {'generator': ('fid', 'sfid', 'precision', 'recall', 'inception_score', 'num_samples',
                          'fid_method'),
            'tokenizer': ('rfid', 'l1', 'psnr', 'ssim', 'psnr_float', 'ssim_gaussian11',
                          'codebook_usage', 'codebook_perplexity', 'codebook_entropy',
                          'num_images')}  # psnr / ssim: LlamaGen's protocol (recon_protocol)


def evaluation_summary(pipeline: Pipeline) -> Dict[str, object]:
    """{stage: headline numbers + ``results`` path} of the stages with an ``evaluation.json``,
    plus ``comparison`` {metric: {role: value}} of the compared stages."""
    out = {}
    for name in pipeline.evaluate.get('stages', []):
        path = pipeline.evaluation_results(name)
        if not osp.isfile(path):
            continue
        with open(path) as f:
            results = json.load(f)
        entry = dict(results=path, unavailable=results.get('unavailable', {}))
        for section, keys in HEADLINE.items():
            part = results.get(section, {})
            entry[section] = {k: part[k] for k in keys if k in part}
        entry['feature_alignment'] = results.get('feature_alignment', {}).get('teachers', {})
        out[name] = entry
    comparison = {}
    for role, name in pipeline.compare.items():
        if name in out:
            for section in ('generator', 'tokenizer'):
                for key, value in out[name][section].items():
                    comparison.setdefault(key, {})[role] = value
            for teacher, values in out[name]['feature_alignment'].items():
                for key, value in values.items():
                    comparison.setdefault(f'{teacher}/{key}', {})[role] = value
    if comparison:
        out['comparison'] = comparison
    return out


def write_summary(pipeline: Pipeline) -> Dict[str, object]:
    """Write ``summary.json`` (and ``curves.png`` when the compared stages ran) in the work dir."""
    summary = dict(pipeline=pipeline.source, work_dir=pipeline.work_dir,
                   stages={s.name: stage_summary(pipeline, s.name) for s in pipeline.stages})
    compared = {role: curves(pipeline, name) for role, name in pipeline.compare.items()
                if summary['stages'][name]['steps']}
    if compared:
        summary['curves'] = compared
        summary['comparison'] = {
            f'final_{key}': {role: (c[key][-1] if c[key] else None) for role, c in compared.items()}
            for key in ('loss_ntp', 'loss_align', 'val_loss_ntp')}
        plot_curves(compared, osp.join(pipeline.work_dir, 'curves.png'))
    evaluation = evaluation_summary(pipeline)
    if evaluation:
        summary['evaluation'] = evaluation
    atomic_write_bytes(json.dumps(summary, indent=1).encode(), osp.join(pipeline.work_dir, 'summary.json'))
    return summary
