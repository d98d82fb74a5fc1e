"""Convert a released tokenizer checkpoint (VQ / LFQ / IBQ) into a gear weights file.

    python tools/model_converters/tokenizer.py vq_ds16_c2i.pt work_dirs/llamagen-vq16.pth
    python tools/model_converters/tokenizer.py gear-vq.pt work_dirs/gear-vq16.pth --key vq_ema
    python tools/model_converters/tokenizer.py pretrain256_16384.ckpt work_dirs/magvit2-lfq16.pth
    python tools/model_converters/tokenizer.py IBQ_pretrain_16384.ckpt work_dirs/ibq16.pth

The family (LlamaGen / GEAR VQ, Open-MAGVIT2 / GEAR LFQ, IBQ / GEAR IBQ) is told from the key
names (``gear.models.converters.tokenizers``); a Lightning checkpoint is read with its LitEma
weights unless ``--key state_dict --live``. Writes ``{OUT stem}-{sha256[:8]}.pth`` beside OUT
(atomically) holding ``{'schema_version': 1, 'arch': TOKENIZERS config, 'state_dict': ...}``,
after checking that the state dict loads strictly into the tokenizer built from ``arch``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # repo root

from mmengine.registry import DefaultScope  # noqa: E402

from gear.models.converters.tokenizers import convert_tokenizer, infer_tokenizer_arch  # noqa: E402
from gear.models.init_from import read_checkpoint  # noqa: E402
from gear.registry import TOKENIZERS  # noqa: E402
from gear.utils.checkpoint import load_state_dict_strict, save_hashed_weights  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released checkpoint (.pt / .pth / .ckpt)')
    parser.add_argument('dst', help='output path; the sha256 prefix is added to its stem')
    parser.add_argument('--key', default=None,
                        help='bundle key to convert (model, state_dict, vq, vq_ema, ema); '
                        'default: the first that holds a tokenizer')
    ema = parser.add_mutually_exclusive_group()
    ema.add_argument('--ema', action='store_true', default=None,
                     help='prefer EMA weights (vq_ema, LitEma shadows); the default for a '
                     'Lightning checkpoint')
    ema.add_argument('--live', dest='ema', action='store_false',
                     help='the live weights even where EMA ones exist')
    parser.add_argument('--resolution', type=int, default=256,
                        help='image size the tokenizer works at (places an IBQ codec\'s attention)')
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    checkpoint = read_checkpoint(args.src)  # weights_only, argparse.Namespace allowed
    family, state_dict = convert_tokenizer(checkpoint, key=args.key, prefer_ema=args.ema)
    arch = infer_tokenizer_arch(state_dict, resolution=args.resolution)
    with DefaultScope.overwrite_default_scope('gear'):
        tokenizer = TOKENIZERS.build(arch)
    load_state_dict_strict(tokenizer, state_dict, source=args.src)
    out = save_hashed_weights(state_dict, args.dst, arch=arch)
    print(f'{family}: {len(state_dict)} tensors, arch {arch}\nwrote {out}')
    return out


if __name__ == '__main__':
    main()
