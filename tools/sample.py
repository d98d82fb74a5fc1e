"""Sample class-conditional images from a trained gear model (stage 1 or 2).

    python tools/sample.py work_dirs/gear_vq_tiny_fashionmnist/final.pth --cfg-scale 2.0
    python tools/sample.py CKPT --per-class 50 --top-k 0 --top-p 1.0 --seed 0  # 50k on ImageNet
    python tools/sample.py work_dirs/x/iter_200.pth --config configs/ar/x.py --num-samples 64

Writes ``{out}/samples.npz`` (the ADM evaluator's layout: arr_0 uint8 (N, H, W, 3), arr_1
labels), ``{out}/grid.png`` (the first 100 images, 10 per row) and ``{out}/sampling.json`` (every
sampling setting, the checkpoint and its sha256, N, wall time). Default ``out``: beside the
checkpoint, ``samples_<settings tag>/``.

    torchrun --nproc-per-node 8 tools/sample.py CKPT --num-samples 50000 --labels uniform

Under ``torchrun`` the batches are sharded over the ranks (nccl, one GPU per rank, on CUDA;
gloo on the CPU) and gathered: the same images as one process with the same settings. Rank 0
writes the files and shows the progress bar (stderr; ``--no-progress``).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout


from gear.apis.cli import (HelpFormatter, add_label_args, add_progress_arg,  # noqa: E402
                           add_sampling_args, label_request, sampling_settings)
from gear.apis.loading import load_model  # noqa: E402
from gear.evaluation.sampling import make_labels, sample_images, save_grid, save_npz  # noqa: E402
from gear.models.generator import generator_parts  # noqa: E402
from gear.utils.checkpoint import CheckpointError, atomic_write_bytes, file_sha256  # noqa: E402
from gear.utils.distributed import process_group_from_environment, world_size  # noqa: E402
from gear.utils.progress import is_rank_zero  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Sample images from a gear AR checkpoint.',
                                     formatter_class=HelpFormatter)
    parser.add_argument('checkpoint', help='final.pth (weights file) or iter_N.pth with --config')
    parser.add_argument('--config', help='config of the run (needed for a training checkpoint)')
    parser.add_argument('--out', help='output folder (default: beside the checkpoint, '
                        'samples_<settings tag>/)')
    add_label_args(parser)
    add_sampling_args(parser)
    add_progress_arg(parser)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    with process_group_from_environment(args.device) as device:
        sample(args, device)


def sample(args, device: str) -> None:
    """Sample on every rank (sharded under torchrun); rank 0 writes the files."""
    settings, request = sampling_settings(args), label_request(args)
    try:
        model = load_model(args.checkpoint, args.config, device=device)
        ar, _ = generator_parts(model, settings.use_ema)
    except (CheckpointError, TypeError) as e:
        sys.exit(f'cannot sample from {args.checkpoint}: {e}')
    labels = make_labels(ar.num_classes, seed=settings.seed, **request)  # (N,)
    out = args.out or osp.join(osp.dirname(osp.abspath(args.checkpoint)),
                               f'samples_{settings.tag()}')
    if is_rank_zero():
        os.makedirs(out, exist_ok=True)
    n = labels.numel()
    start = time.perf_counter()
    images = sample_images(model, labels, settings, device, progress=not args.no_progress)
    wall = time.perf_counter() - start
    if not is_rank_zero():
        return
    save_npz(images, labels, osp.join(out, 'samples.npz'))
    save_grid(images, osp.join(out, 'grid.png'))
    ranks = world_size()
    record = dict(settings.to_dict(), checkpoint=osp.abspath(args.checkpoint),
                  checkpoint_sha256=file_sha256(args.checkpoint)[:16], config=args.config,
                  model=type(model).__name__, num_samples=n, num_classes=ar.num_classes,
                  label_mode=request['label_mode'], per_class=request['per_class'],
                  image_shape=list(images.shape[1:]), device=device, world_size=ranks,
                  wall_time_s=wall, images_per_s=n / wall)
    atomic_write_bytes(json.dumps(record, indent=2).encode(), osp.join(out, 'sampling.json'))
    print(f'[sample] {n} images in {wall:.1f}s ({n / wall:.2f} images/s, {ranks} '
          f'process{"es" if ranks > 1 else ""}) -> {out}')


if __name__ == '__main__':
    main()
