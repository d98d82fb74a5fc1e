"""Evaluate a text-to-image checkpoint on a caption set: FID / precision / recall against its
images and CLIPScore against its captions (``gear.apis.evaluate_t2i``).

    python tools/evaluate_t2i.py CKPT --shards 'data/fashion_mnist_captions/test-*.tar' \
        --resolution 32 --num-samples 500 --clip-model PATH --out results.json

Without ``--clip-model`` (a transformers CLIPModel directory) CLIPScore is reported unavailable
with the reason. Every sampling setting, the checkpoint's sha256 and the reference file are
recorded in the JSON.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from gear.apis.cli import (HelpFormatter, add_progress_arg, add_sampling_args,  # noqa: E402
                           sampling_settings)
from gear.apis.evaluate_t2i import evaluate_t2i  # noqa: E402
from gear.apis.loading import load_model  # noqa: E402
from gear.datasets import CaptionShards  # noqa: E402
from gear.utils.checkpoint import CheckpointError, atomic_write_bytes, file_sha256  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=HelpFormatter)
    p.add_argument('checkpoint', help='final.pth of a text-to-image stage')
    p.add_argument('--config', help='config of the run (for a training checkpoint)')
    p.add_argument('--shards', required=True, help='caption shards (glob or brace pattern)')
    p.add_argument('--resolution', type=int, default=256, help='image side of the reference')
    p.add_argument('--num-samples', type=int, default=1000, help='captions (and images) used')
    p.add_argument('--clip-model', help='transformers CLIPModel directory or hub id')
    p.add_argument('--inception', help='FID network weights (default: the offline TF-Inception)')
    p.add_argument('--cache-dir', default='work_dirs/fid_cache', help='reference statistics')
    p.add_argument('--out', required=True, help='results JSON (a grid.png beside it)')
    add_sampling_args(p)
    add_progress_arg(p)
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    settings = sampling_settings(args)
    try:
        model = load_model(args.checkpoint, args.config, device=args.device)
    except (CheckpointError, TypeError) as e:
        sys.exit(f'cannot evaluate {args.checkpoint}: {e}')
    if getattr(model, 'text_encoder', None) is None:
        sys.exit(f'{args.checkpoint} is class-conditional: use tools/test.py')
    dataset = CaptionShards(shards=args.shards, resolution=args.resolution)
    grid = osp.join(osp.dirname(osp.abspath(args.out)), 'grid.png')
    results = evaluate_t2i(model, dataset, args.num_samples, settings, args.device,
                           args.clip_model, args.inception, args.cache_dir, grid,
                           progress=not args.no_progress)
    results.update(checkpoint=osp.abspath(args.checkpoint),
                   checkpoint_sha256=file_sha256(args.checkpoint)[:16], shards=args.shards,
                   text_encoder=model.text_encoder.describe())
    atomic_write_bytes(json.dumps(results, indent=2, default=str).encode(), args.out)
    shown = {k: results[k] for k in ('fid', 'precision', 'recall', 'clip_score') if k in results}
    print(f'[evaluate_t2i] {shown}; unavailable: {results.get("unavailable")} -> {args.out}')


if __name__ == '__main__':
    main()
