"""Sampling throughput with one and with N processes (torchrun), side by side, same settings.

    python tools/benchmark_sampling_ddp.py CKPT --nproc 1 2 --num-samples 256 --batch-size 16 \
        --device cpu --out bench_ddp.json

Each round runs ``tools/sample.py`` once per process count, alternating (so a change in the
machine's load hits every count alike); the fastest round of each counts. images/s is the
run's ``sampling.json`` value: N samples over rank 0's sampling wall time, gathering included,
process start-up and model loading not. Every run must write the same ``samples.npz`` arrays
(sharding changes nothing), else the tool exits with an error. ``--threads`` torch threads per
process (default on the CPU: the cores divided among the processes); the load average before
and after is recorded, since other jobs on the machine move the numbers.
"""
import argparse
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Sampling images/s with 1 and N processes.',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('checkpoint', help='final.pth (weights file) or iter_N.pth with --config')
    parser.add_argument('--config', help='config of the run (needed for a training checkpoint)')
    parser.add_argument('--nproc', type=int, nargs='+', default=[1, 2],
                        help='process counts to compare (torchrun --nproc-per-node)')
    parser.add_argument('--num-samples', type=int, default=256, help='labels cycle the classes')
    parser.add_argument('--batch-size', type=int, default=16, help='images per batch')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-scale', type=float, default=1.0)
    parser.add_argument('--repeats', type=int, default=2, help='alternating rounds')
    parser.add_argument('--threads', type=int, help='torch threads per process (default: CPU '
                        'cores // processes on the CPU, 1 per process on CUDA)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (one GPU per rank)")
    parser.add_argument('--out', default='bench_sampling_ddp.json', help='JSON file to write')
    return parser


def run_once(args, nproc: int, out_dir: str) -> dict:
    """One ``tools/sample.py`` run on ``nproc`` processes -> its ``sampling.json``."""
    threads = args.threads or (max(1, (os.cpu_count() or 1) // nproc)
                               if args.device == 'cpu' else 1)
    launcher = ([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                 '--nproc-per-node', str(nproc)] if nproc > 1 else [sys.executable])
    cmd = [*launcher, osp.join(REPO, 'tools', 'sample.py'), args.checkpoint, '--out', out_dir,
           '--num-samples', str(args.num_samples), '--batch-size', str(args.batch_size),
           '--seed', str(args.seed), '--cfg-scale', str(args.cfg_scale), '--device', args.device,
           '--no-progress', *(['--config', args.config] if args.config else [])]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    with open(osp.join(out_dir, 'sampling.json')) as f:
        return dict(json.load(f), threads_per_process=threads)


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    load_before, start = os.getloadavg(), time.time()
    rounds, first_arrays, identical = {n: [] for n in args.nproc}, None, True
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for n in args.nproc:
                out = osp.join(tmp, f'n{n}_r{r}')
                rounds[n].append(run_once(args, n, out))
                with np.load(osp.join(out, 'samples.npz')) as z:
                    arrays = z['arr_0'], z['arr_1']  # (N, H, W, 3) uint8, (N,) labels
                first_arrays = first_arrays or arrays
                identical &= all(np.array_equal(a, b) for a, b in zip(first_arrays, arrays))
    result = {str(n): dict(images_per_s=max(x['images_per_s'] for x in runs),
                           rounds_images_per_s=[x['images_per_s'] for x in runs],
                           rounds_wall_time_s=[x['wall_time_s'] for x in runs],
                           threads_per_process=runs[0]['threads_per_process'],
                           world_size=runs[0]['world_size'])
              for n, runs in rounds.items()}
    base = result[str(args.nproc[0])]['images_per_s']
    first = rounds[args.nproc[0]][0]
    record = dict(
        argv=sys.argv[1:] if argv is None else list(argv), checkpoint=osp.abspath(args.checkpoint), checkpoint_sha256=first['checkpoint_sha256'],
        model=first['model'], num_samples=args.num_samples, batch_size=args.batch_size,
        image_shape=first['image_shape'], device=args.device, repeats=args.repeats,
        processes=result, speedup={str(n): result[str(n)]['images_per_s'] / base
                                   for n in args.nproc},
        identical_samples=identical, cpu_count=os.cpu_count(),
        cpu=platform.processor() or platform.machine(), load_average_before=load_before,
        load_average_after=os.getloadavg(), total_time_s=time.time() - start)
    with open(args.out, 'w') as f:
        json.dump(record, f, indent=2)
    print('[benchmark] ' + ', '.join(f'{n} process(es): {result[str(n)]["images_per_s"]:.2f} '
                                     f'images/s' for n in args.nproc)
          + f'; identical samples: {identical} -> {args.out}')
    if not identical:
        sys.exit('the process counts sampled different images (see the sharding)')


if __name__ == '__main__':
    main()
