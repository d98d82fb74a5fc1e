"""Write image-caption pairs as WebDataset tar shards (with sidecar indexes) for ``CaptionShards``.

    # the CPU demo set (configs/_base_/datasets/fashion_mnist_captions.py reads it)
    python tools/make_caption_shards.py --fashion-mnist /usr/share/datasets/fashion-mnist \\
        --split train --out data/fashion_mnist_captions/train-%06d.tar --maxcount 10000
    python tools/make_caption_shards.py --fashion-mnist /usr/share/datasets/fashion-mnist \\
        --split test --out data/fashion_mnist_captions/test-%06d.tar --maxcount 10000

    # a captioned image folder: a JSON-lines file, or cat.txt beside each cat.jpg
    python tools/make_caption_shards.py --images DIR [--captions FILE.jsonl] \\
        --out 'out/train-%06d.tar'

The work is in gear: sources in ``gear/datasets/caption_sources.py``, the writer in
``gear/datasets/caption_shards_writer.py``.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # a checkout without install

from gear.datasets.caption_shards_writer import write_caption_shards  # noqa: E402
from gear.datasets.caption_sources import fashion_mnist_samples, folder_samples  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--images', metavar='DIR', help='folder of images to caption')
    src.add_argument('--fashion-mnist', metavar='DATA_ROOT',
                     help='Fashion-MNIST idx folder: the demo set (captions carry only the class)')
    p.add_argument('--captions', metavar='FILE.jsonl',
                   help='with --images: one {"file": relative path, "caption": str} a line '
                        '(default: IMAGE.txt beside each image)')
    p.add_argument('--split', choices=('train', 'test'), default='train',
                   help='with --fashion-mnist (default: train)')
    p.add_argument('--num', type=int, default=None, help='with --fashion-mnist: the first N only')
    p.add_argument('--seed', type=int, default=0,
                   help='with --fashion-mnist: picks the caption templates (default: 0)')
    p.add_argument('--out', required=True, metavar='PATTERN',
                   help="shard paths with one %%d field, e.g. 'out/train-%%06d.tar'")
    p.add_argument('--maxcount', type=int, default=10000, help='samples per shard (10000)')
    p.add_argument('--overwrite', action='store_true', help='replace existing shards')
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.images is not None:
        if args.num is not None:
            build_parser().error('--num goes with --fashion-mnist')
        samples = folder_samples(args.images, args.captions)
    else:
        if args.captions is not None:
            build_parser().error('--captions goes with --images')
        samples = fashion_mnist_samples(args.fashion_mnist, args.split, args.num, args.seed)
    start = time.perf_counter()
    shards = write_caption_shards(samples, args.out, args.maxcount, overwrite=args.overwrite)
    print(f'wrote {len(shards)} shard(s) {shards[0]} .. {shards[-1]} (with .idx.json sidecars) '
          f'in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
