"""Convert a released LlamaGen / GEAR VQ tokenizer checkpoint into a gear weights file.

    python tools/model_converters/llamagen_vq.py vq_ds16_c2i.pt work_dirs/llamagen-vq16.pth
    python tools/model_converters/llamagen_vq.py gear-vq.pt work_dirs/gear-vq16.pth --key vq_ema

writes ``{OUT stem}-{sha256[:8]}.pth`` beside OUT (atomically) holding
``{'schema_version': 1, 'arch': VQTokenizer kwargs, 'state_dict': gear state dict}``, after
checking that the state dict loads strictly into a ``VQTokenizer`` built from ``arch``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root

from gear.models.converters.llamagen_vq import convert_llamagen_vq, infer_arch  # noqa: E402
from gear.models.tokenizers import VQTokenizer  # noqa: E402
from gear.models.init_from import read_checkpoint  # noqa: E402
from gear.utils.checkpoint import load_state_dict_strict, save_hashed_weights  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released checkpoint (.pt / .pth)')
    parser.add_argument('dst', help='output path; the sha256 prefix is added to its stem')
    parser.add_argument('--key', default=None,
                        help='bundle key to convert (model, state_dict, vq, vq_ema, ema); '
                        'default: the first present')
    parser.add_argument('--ema', action='store_true', help='prefer EMA weights when no --key')
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    checkpoint = read_checkpoint(args.src)  # weights_only, argparse.Namespace allowed
    state_dict = convert_llamagen_vq(checkpoint, key=args.key, prefer_ema=args.ema)
    arch = infer_arch(state_dict)
    load_state_dict_strict(VQTokenizer(**arch), state_dict, source=args.src)
    out = save_hashed_weights(state_dict, args.dst, arch=arch)
    print(f'{len(state_dict)} tensors, arch {arch}\nwrote {out}')
    return out


if __name__ == '__main__':
    main()
