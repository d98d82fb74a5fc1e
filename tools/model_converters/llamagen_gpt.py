"""Convert a released LlamaGen / GEAR class-conditional GPT checkpoint into a gear weights file.

    python tools/model_converters/llamagen_gpt.py c2i_L_256.pt work_dirs/llamagen-gpt-l.pth
    python tools/model_converters/llamagen_gpt.py gear-stage1.pt work_dirs/gear-ar-l.pth --key ema

writes ``{OUT stem}-{sha256[:8]}.pth`` beside OUT (atomically) holding
``{'schema_version': 1, 'arch': LlamaGenGPT kwargs, 'state_dict': gear state dict}``, after
checking that the state dict loads strictly into a ``LlamaGenGPT`` built from ``arch`` (on the
meta device, so even XL costs no memory).
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root

from gear.models.ar import LlamaGenGPT  # noqa: E402
from gear.models.converters.llamagen_gpt import convert_llamagen_gpt, infer_arch  # noqa: E402
from gear.models.init_from import read_checkpoint  # noqa: E402
from gear.utils.checkpoint import CheckpointError, mismatch_report, save_hashed_weights  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released checkpoint (.pt / .pth)')
    parser.add_argument('dst', help='output path; the sha256 prefix is added to its stem')
    parser.add_argument('--key', default=None,
                        help='bundle key to convert (model, module, state_dict, ar, ema); '
                        'default: the first that holds GPT weights')
    parser.add_argument('--ema', action='store_true', help='prefer EMA weights when no --key')
    parser.add_argument('--n-head', type=int, default=None,
                        help='attention heads (default: from the GPT size table)')
    parser.add_argument('--block-size', type=int, default=256,
                        help='image tokens (256 for the 256 px releases, 576 for 384 px)')
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    checkpoint = read_checkpoint(args.src)  # weights_only, argparse.Namespace allowed
    state_dict = convert_llamagen_gpt(checkpoint, key=args.key, prefer_ema=args.ema)
    arch = infer_arch(state_dict, n_head=args.n_head, block_size=args.block_size)
    with torch.device('meta'):
        report = mismatch_report(LlamaGenGPT(**arch), state_dict)
    if report is not None:
        raise CheckpointError(f'{args.src} does not match LlamaGenGPT({arch}): {report}')
    out = save_hashed_weights(state_dict, args.dst, arch=arch)
    print(f'{len(state_dict)} tensors, arch {arch}\nwrote {out}')
    return out


if __name__ == '__main__':
    main()

