"""Benchmark KV-cache sampling against full-prefix sampling, side by side in one process.

    python tools/benchmark_sampling.py work_dirs/gear_vq_tiny_fashionmnist/final.pth
    python tools/benchmark_sampling.py CKPT --num-images 256 --batch-size 64 --cfg-scale 2 \
        --device cuda --out bench.json

Both modes sample the same labels with the same seed, alternating for ``--repeats`` rounds; the
fastest round of each counts. Writes JSON: images/s per mode, the speed-up, whether the tokens
were identical, the device, torch threads and the model sizes; then exits with an error if the
two modes sampled different tokens.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402

from gear.apis.cli import HelpFormatter, add_sampling_args, sampling_settings  # noqa: E402
from gear.utils.device import device_name  # noqa: E402
from gear.apis.loading import load_model  # noqa: E402
from gear.models.generator import generator_parts  # noqa: E402
from gear.utils.checkpoint import file_sha256  # noqa: E402
from gear.evaluation.sampling import benchmark_cache  # noqa: E402
from gear.utils.checkpoint import CheckpointError, atomic_write_bytes  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='KV cache vs no cache sampling throughput.',
                                     formatter_class=HelpFormatter)
    parser.add_argument('checkpoint', help='final.pth (weights file) or iter_N.pth with --config')
    parser.add_argument('--config', help='config of the run (needed for a training checkpoint)')
    parser.add_argument('--num-images', type=int, default=64, help='labels cycle the classes')
    parser.add_argument('--repeats', type=int, default=2, help='alternating rounds per mode')
    parser.add_argument('--out', default='bench.json', help='JSON file to write')
    add_sampling_args(parser)  # --no-cache is ignored: both modes run
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    settings = sampling_settings(args)
    try:
        model = load_model(args.checkpoint, args.config, device=args.device)
        ar, tokenizer = generator_parts(model, settings.use_ema)
    except (CheckpointError, TypeError) as e:
        sys.exit(f'cannot sample from {args.checkpoint}: {e}')
    labels = torch.arange(args.num_images) % ar.num_classes  # (N,)
    result = benchmark_cache(model, labels, settings, args.device, repeats=args.repeats)
    record = dict(
        checkpoint=osp.abspath(args.checkpoint),
        checkpoint_sha256=file_sha256(args.checkpoint)[:16],
        model=type(model).__name__, num_images=args.num_images, repeats=args.repeats,
        settings={k: v for k, v in settings.to_dict().items() if k != 'use_cache'},
        tokens_per_image=ar.block_size, **result,
        device=args.device, device_name=device_name(args.device),
        torch_threads=torch.get_num_threads(), torch_version=torch.__version__,
        ar_params=sum(p.numel() for p in ar.parameters()),
        tokenizer_params=sum(p.numel() for p in tokenizer.parameters()))
    atomic_write_bytes(json.dumps(record, indent=2).encode(), args.out)
    print(f'[benchmark] cache {result["cache"]["images_per_s"]:.2f} images/s, no cache '
          f'{result["no_cache"]["images_per_s"]:.2f} images/s, speed-up {result["speedup"]:.2f}x '
          f'-> {args.out}')
    if not result['identical_tokens']:
        sys.exit(f'KV-cache and full-prefix sampling differ on '
                 f'{1 - result["identical_images"]:.1%} of the images (see {args.out})')


if __name__ == '__main__':
    main()
