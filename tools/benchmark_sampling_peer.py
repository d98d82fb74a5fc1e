"""Benchmark gear's KV-cache sampler against LlamaGen's own ``generate()`` on the same GPT
weights, the same batch, CFG and settings, side by side in one process.

    python tools/benchmark_sampling_peer.py --peer-dir ~/src/LlamaGen --out bench_peer.json
    python tools/benchmark_sampling_peer.py --peer-dir ~/src/LlamaGen --size gpt-b --device cuda

The peer is imported from its checkout (``--peer-dir``: ``autoregressive/models/gpt.py`` and
``generate.py``); nothing of it is copied into gear. A gear ``LlamaGenGPT`` is built with a fixed
seed and its weights are loaded into LlamaGen's ``Transformer`` (``to_llamagen_gpt``), so both
samplers run the same network. Modes, interleaved for ``--repeats`` rounds, fastest round counts:

- ``gear``: ``gear.models.ar.generate`` as it ships (eager);
- ``gear_compiled``: ``generate(..., compile=True)``, each decode step one compiled graph; its
  compile time is reported separately too, and its tokens are compared with ``gear``'s;
- ``llamagen_eager``: LlamaGen's ``generate`` on the eager model;
- ``llamagen_compiled``: the model compiled as LlamaGen's ``sample_c2i.py --compile`` does,
  ``torch.compile(model, mode='reduce-overhead', fullgraph=True)``; its compile time (the first,
  warm-up call minus the fastest timed one) is reported separately.

Compiled modes are compiled once, in the warm-up call, and reused by every timed round.

The two samplers draw random numbers differently (LlamaGen: the global RNG), so their tokens are
not compared; gear's are checked against its uncached reference path in ``tests/``. Writes JSON:
images/s per mode, speed-ups of each gear mode over each peer mode, compile times, whether
gear_compiled sampled gear's tokens, the sizes, device, threads, versions.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402

from gear.models.ar import LlamaGenGPT, generate  # noqa: E402
from gear.models.converters.llamagen_gpt import to_llamagen_gpt  # noqa: E402
from gear.utils.checkpoint import atomic_write_bytes  # noqa: E402
from gear.utils.device import DEVICE_HELP, default_device, device_name  # noqa: E402

# the sizes of issue 15's measurement and a GPT-B-like one (n_layer, n_head, dim, tokens, batch)
SIZES = {
    'tiny': dict(dim=192, n_layer=4, n_head=3, block_size=64, batch=32, vocab_size=1024),
    'tiny256': dict(dim=256, n_layer=4, n_head=4, block_size=256, batch=8, vocab_size=1024),
    'gpt-b': dict(dim=768, n_layer=12, n_head=12, block_size=256, batch=8, vocab_size=16384),
}


MODES = ('gear', 'gear_compiled', 'llamagen_eager', 'llamagen_compiled')


def import_peer(peer_dir: str):
    """LlamaGen's ``(Transformer, ModelArgs, generate)`` from its checkout."""
    if not osp.isfile(osp.join(peer_dir, 'autoregressive', 'models', 'gpt.py')):
        raise SystemExit(f'--peer-dir {peer_dir}: no autoregressive/models/gpt.py (a LlamaGen '
                         'checkout is expected)')
    sys.path.insert(0, osp.abspath(peer_dir))
    from autoregressive.models.generate import generate as peer_generate
    from autoregressive.models.gpt import ModelArgs, Transformer
    return Transformer, ModelArgs, peer_generate


def build_pair(size: dict, num_classes: int, peer, device: str):
    """(gear model, LlamaGen model) with the same weights, eval mode, on ``device``."""
    Transformer, ModelArgs, _ = peer
    torch.manual_seed(0)
    arch = dict(dim=size['dim'], n_layer=size['n_layer'], n_head=size['n_head'],
                vocab_size=size['vocab_size'], block_size=size['block_size'],
                num_classes=num_classes)
    ours = LlamaGenGPT(**arch).eval()
    theirs = Transformer(ModelArgs(model_type='c2i', cls_token_num=1, **arch)).eval()
    missing, unexpected = theirs.load_state_dict(to_llamagen_gpt(ours.state_dict()),
                                                 strict=False)
    bad = [k for k in missing if 'freqs_cis' not in k and 'kv_cache' not in k] + unexpected
    if bad:
        raise SystemExit(f'weights do not map onto LlamaGen\'s Transformer: {bad[:5]}')
    return ours.to(device), theirs.to(device)


def _sync(device: str) -> None:
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--peer-dir', required=True, help='a LlamaGen checkout')
    parser.add_argument('--size', choices=sorted(SIZES), default='tiny', help='GPT and batch')
    parser.add_argument('--cfg-scale', type=float, default=2.0, help='CFG scale (1: off)')
    parser.add_argument('--num-classes', type=int, default=10, help='class labels')
    parser.add_argument('--repeats', type=int, default=3, help='interleaved rounds per mode')
    parser.add_argument('--modes', nargs='+', choices=MODES,
                        default=['gear', 'gear_compiled', 'llamagen_eager', 'llamagen_compiled'],
                        help='what to time')
    parser.add_argument('--threads', type=int, help='torch threads (default: torch\'s)')
    parser.add_argument('--device', default=default_device(), help=DEVICE_HELP)
    parser.add_argument('--out', default='bench_sampling_peer.json', help='JSON file to write')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    peer = import_peer(args.peer_dir)
    size = SIZES[args.size]
    ours, theirs = build_pair(size, args.num_classes, peer, args.device)
    cond = (torch.arange(size['batch']) % args.num_classes).to(args.device)  # (B,)
    n_tok = size['block_size']
    runs = {
        'gear': lambda: generate(ours, cond, cfg_scale=args.cfg_scale, generator=0),
        'gear_compiled': lambda: generate(ours, cond, cfg_scale=args.cfg_scale, generator=0,
                                          compile=True),
        'llamagen_eager': lambda: peer[2](theirs, cond, n_tok, cfg_scale=args.cfg_scale,
                                          temperature=1.0, top_k=0, top_p=1.0,
                                          sample_logits=True),
    }
    if 'llamagen_compiled' in args.modes:
        compiled = torch.compile(theirs, mode='reduce-overhead', fullgraph=True)
        compiled.model_type, compiled.num_classes = theirs.model_type, theirs.num_classes
        runs['llamagen_compiled'] = lambda: peer[2](compiled, cond, n_tok,
                                                    cfg_scale=args.cfg_scale, temperature=1.0,
                                                    top_k=0, top_p=1.0, sample_logits=True)
    times = {mode: [] for mode in args.modes}
    first, tokens = {}, {}
    with torch.inference_mode():
        for mode in args.modes:  # warm-up: first calls (compilation for the compiled modes)
            first[mode] = timed(runs[mode], args.device)
        for _ in range(args.repeats):
            for mode in args.modes:
                times[mode].append(timed(lambda: tokens.__setitem__(mode, runs[mode]()),
                                         args.device))
    # compile time: the first call minus the fastest steady one
    compile_s = {m: first[m] - min(times[m]) for m in args.modes if m.endswith('_compiled')}
    n = size['batch']
    result = {mode: dict(seconds=t, images_per_s=n / min(t)) for mode, t in times.items()}
    speedup = {f'{g}_over_{m}': result[g]['images_per_s'] / result[m]['images_per_s']
               for g in args.modes if g.startswith('gear')
               for m in args.modes if m.startswith('llamagen')}
    if 'gear' in result and 'gear_compiled' in result:
        speedup['gear_compiled_over_gear'] = (result['gear_compiled']['images_per_s']
                                              / result['gear']['images_per_s'])
    same = None
    if 'gear' in tokens and 'gear_compiled' in tokens:
        same = (tokens['gear'] == tokens['gear_compiled']).all(1).float().mean().item()
    record = dict(size=args.size, **size, cfg_scale=args.cfg_scale, repeats=args.repeats,
                  results=result, speedup=speedup,
                  llamagen_compile_s=compile_s.get('llamagen_compiled'),
                  gear_compile_s=compile_s.get('gear_compiled'),
                  gear_compiled_identical_images=same,
                  peer_dir=osp.abspath(args.peer_dir), device=args.device,
                  device_name=device_name(args.device),
                  torch_threads=torch.get_num_threads(), torch_version=torch.__version__)
    atomic_write_bytes(json.dumps(record, indent=2).encode(), args.out)
    print(f'[benchmark] {args.size}: ' + ', '.join(
        f'{m} {r["images_per_s"]:.2f} images/s' for m, r in result.items()) + '; ' +
        ', '.join(f'{k} {v:.2f}x' for k, v in speedup.items()) + '; compile ' +
        ', '.join(f'{k} {v:.1f}s' for k, v in compile_s.items()) + f' -> {args.out}')

if __name__ == '__main__':
    main()
