"""Convert a released LlamaGen / GEAR VQ tokenizer checkpoint into a gear weights file.

    python tools/model_converters/llamagen_vq.py vq_ds16_c2i.pt work_dirs/llamagen-vq16.pth
    python tools/model_converters/llamagen_vq.py gear-vq.pt work_dirs/gear-vq16.pth --key vq_ema

writes ``{OUT stem}-{sha256[:8]}.pth`` beside OUT (atomically) holding
``{'schema_version': 1, 'arch': VQTokenizer kwargs, 'state_dict': gear state dict}``, after
checking that the state dict loads strictly into a ``VQTokenizer`` built from ``arch``.
"""
import argparse
import hashlib
import io
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root

from gear.models.converters.llamagen_vq import convert_llamagen_vq, infer_arch  # noqa: E402
from gear.models.tokenizers import VQTokenizer  # noqa: E402
from gear.utils.checkpoint import (SCHEMA_VERSION, atomic_write_bytes,  # noqa: E402
                                   load_file, load_state_dict_strict)


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
    # LlamaGen's training bundles also pickle their argparse Namespace: allow that class
    # (and only it) so the file is still read with weights_only=True.
    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = load_file(args.src, weights_only=True)
    state_dict = convert_llamagen_vq(checkpoint, key=args.key, prefer_ema=args.ema)
    arch = infer_arch(state_dict)
    load_state_dict_strict(VQTokenizer(**arch), state_dict, source=args.src)

    buffer = io.BytesIO()
    torch.save(dict(schema_version=SCHEMA_VERSION, arch=arch,
                    state_dict={k: v.detach().cpu().contiguous() for k, v in state_dict.items()}),
               buffer)
    data = buffer.getvalue()
    stem, ext = osp.splitext(args.dst)
    out = f'{stem}-{hashlib.sha256(data).hexdigest()[:8]}{ext or ".pth"}'
    atomic_write_bytes(data, out)  # temp file in the same directory, then os.replace
    print(f'{len(state_dict)} tensors, arch {arch}\nwrote {out}')
    return out


if __name__ == '__main__':
    main()
