"""Download a model-zoo file (verified, cached) and print its local path.

    python tools/download.py gear-vq16                    # the released file, in the cache
    python tools/download.py gear-vq16 --convert          # the converted gear weights file
    python tools/download.py llamagen-c2i-l --dest ckpts/ # a copy in ckpts/
    python tools/download.py --list                       # every name

The cache is ``$GEAR_CACHE`` (default ``~/.cache/gear``); see docs/model_zoo.md.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import argparse  # noqa: E402

from gear.utils.download import DownloadError, copy_to  # noqa: E402
from gear.utils.model_index import (load_index, resolve_checkpoint,  # noqa: E402
                                    unknown_name_error)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('name', nargs='?', help='a model-zoo name (model_zoo.md)')
    parser.add_argument('--dest', help='also copy the file into this directory')
    parser.add_argument('--convert', action='store_true',
                        help='convert to a gear weights file (cached) and print that path')
    parser.add_argument('--key', help='bundle entry to convert (default: the entry\'s Key)')
    parser.add_argument('--list', action='store_true', help='print every name and exit')
    return parser


def main(argv=None) -> str:
    args = build_parser().parse_args(argv)
    if args.list:
        for name, entry in sorted(load_index().items()):
            print(f'{name:24s} {entry.family:4s} {entry.stage:9s} {entry.where}')
        return ''
    if not args.name:
        build_parser().error('give a NAME (or --list)')
    if args.name not in load_index():
        raise unknown_name_error(args.name)
    if args.convert:
        from gear.apis.zoo import converted_file_of
        path = converted_file_of(args.name, key=args.key)
    else:
        path = resolve_checkpoint(args.name)
    if args.dest:
        path = copy_to(path, args.dest)
    print(path)
    return path


if __name__ == '__main__':
    try:
        main()
    except (DownloadError, FileNotFoundError) as e:
        sys.exit(f'error: {e}')
