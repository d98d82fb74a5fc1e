"""Make a model-zoo file from a gear weights file or a training checkpoint; print its metafile entry.

    python tools/publish_model.py work_dirs/gear_vq_l_imagenet/final.pth --out release/
    python tools/publish_model.py work_dirs/RUN/iter_400000.pth --config configs/gear/gear_vq_l_imagenet.py --name gear-vq16-mine

Writes ``{name}-{sha256[:8]}.pth`` (no optimizer state; EMA weights and the arch kept; non-finite
weights refused) and prints the ``Models:`` item to paste into ``configs/*/metafile.yml``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import yaml  # noqa: E402

from gear.apis.publish import publish_model  # noqa: E402


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='final.pth (weights file) or iter_N.pth (with --config)')
    parser.add_argument('--out', default='.', help='output directory')
    parser.add_argument('--name', help='release name (default: the run directory name)')
    parser.add_argument('--config', help='config of the run (required for iter_N.pth)')
    args = parser.parse_args(argv)
    path, entry = publish_model(args.checkpoint, args.out, args.name, args.config)
    print(f'# wrote {path}\n# add to configs/*/metafile.yml (set Source, Results, Key):')
    print(yaml.safe_dump({'Models': [entry]}, sort_keys=False), end='')
    return path


if __name__ == '__main__':
    main()
